"""SSD's MultiBoxLoss: hand-computed matching, encoding, mining and normalisation; random
cases against the plain loop reference of tests/layers/multibox_ref.py (forward and the
fork's gradients); gradcheck where the loss is smooth; the layer's refusals."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest
import torch

import caffe2torch as c2t
from caffe2torch.errors import BuildError, DataError
from caffe2torch.layers.forks.ssd_loss import (
    MultiBoxSpec,
    encode_boxes,
    match_boxes,
    multibox_loss,
)
from caffe2torch.proto import caffe_pb2
from tests.layers import multibox_ref as ref

MB = caffe_pb2.MultiBoxLossParameter
LP = caffe_pb2.LossParameter
CS = caffe_pb2.PriorBoxParameter


def spec_of(p: ref.Params) -> MultiBoxSpec:
    fields = {f.name for f in dataclasses.fields(MultiBoxSpec)}
    kw = {k: v for k, v in dataclasses.asdict(p).items() if k in fields}
    return MultiBoxSpec(**kw, use_loc=p.propagate[0], use_conf=p.propagate[1])


def run(loc, conf, prior, gt, p: ref.Params, dtype=torch.float32):
    lt = torch.tensor(np.asarray(loc), dtype=dtype, requires_grad=True)
    ct = torch.tensor(np.asarray(conf), dtype=dtype, requires_grad=True)
    loss = multibox_loss(lt, ct, torch.tensor(prior), torch.tensor(gt), spec_of(p))
    assert loss.shape == () and loss.requires_grad  # also with nothing to score
    loss.backward()
    gl = lt.grad if lt.grad is not None else torch.zeros_like(lt)
    gc = ct.grad if ct.grad is not None else torch.zeros_like(ct)
    return float(loss.detach()), gl.numpy(), gc.numpy()


def priors_blob(boxes, var=(0.1, 0.1, 0.2, 0.2)) -> np.ndarray:
    b = np.asarray(boxes, np.float32).reshape(-1, 4)
    v = np.tile(np.asarray(var, np.float32), (b.shape[0], 1))
    return np.concatenate([b.reshape(-1), v.reshape(-1)]).reshape(1, 2, -1)


def gt_rows(rows) -> np.ndarray:
    return np.asarray(rows, np.float32).reshape(1, 1, -1, 8)


# ----------------------------------------------------------------------------- matching

A, B, C, D = [0, 0, .5, .5], [.5, .5, 1, 1], [0, 0, 1, 1], [0, 0, .5, .6]
GT1, GT2 = [0, 0, .5, .5], [.5, 0, 1, .5]


def overlaps(priors, gts) -> torch.Tensor:
    from caffe2torch.layers.forks.ssd_loss import bbox_size, jaccard

    p, g = torch.tensor(priors), torch.tensor(gts)
    return jaccard(p, bbox_size(p), g, bbox_size(g))


def test_jaccard_by_hand() -> None:
    ov = overlaps([A, B, C, D], [GT1, GT2])
    expect = [[1, 0], [0, 0], [.25, .25], [.25 / .3, 0]]  # edges touching: no overlap
    assert torch.allclose(ov, torch.tensor(expect), atol=1e-6)


def test_bipartite_then_per_prediction() -> None:
    ov = overlaps([A, B, C, D], [GT1, GT2])
    idx, best = match_boxes(ov, None, MB.BIPARTITE, 0.5)
    # A takes GT1 (1.0), then the best left for GT2 is C (0.25); D stays unmatched
    assert idx.tolist() == [0, -1, 1, -1]
    assert best.tolist() == pytest.approx([1, 0, .25, .25 / .3], abs=1e-6)
    idx, _ = match_boxes(ov, None, MB.PER_PREDICTION, 0.5)
    assert idx.tolist() == [0, -1, 1, 0]  # D: 0.833 >= 0.5 with GT1
    idx, _ = match_boxes(ov, None, MB.PER_PREDICTION, 0.9)
    assert idx.tolist() == [0, -1, 1, -1]


def test_ties_go_to_the_first_prior_then_the_first_box() -> None:
    ov = overlaps([C, C], [GT1, GT2])  # all four overlaps 0.25
    idx, _ = match_boxes(ov, None, MB.BIPARTITE, 0.5)
    assert idx.tolist() == [0, 1]


def test_cross_boundary_priors_are_ignored() -> None:
    ov = overlaps([[-.1, 0, .5, .5], C], [GT1])
    idx, best = match_boxes(ov, torch.tensor([True, False]), MB.PER_PREDICTION, 0.2)
    assert idx.tolist() == [-2, 0]
    assert best[0] == 0


# ----------------------------------------------------------------------------- encoding

PRIOR, BOX, VAR = [.2, .2, .6, .6], [.3, .2, .7, .8], [.1, .1, .2, .2]


@pytest.mark.parametrize(("code", "in_target", "expect"), [
    (CS.CORNER, False, [1, 0, .5, 1]),
    (CS.CORNER, True, [.1, 0, .1, .2]),
    (CS.CORNER_SIZE, False, [2.5, 0, 1.25, 2.5]),
    (CS.CORNER_SIZE, True, [.25, 0, .25, .5]),
    (CS.CENTER_SIZE, False, [2.5, 2.5, 0, math.log(1.5) / .2]),
    (CS.CENTER_SIZE, True, [.25, .25, 0, math.log(1.5)]),
])
def test_encoding_by_hand(code: int, in_target: bool, expect: list[float]) -> None:
    got = encode_boxes(torch.tensor([BOX]), torch.tensor([PRIOR]), torch.tensor([VAR]), code,
                       in_target)
    assert got[0].tolist() == pytest.approx(expect, abs=1e-5)


def test_one_positive_loss_by_hand() -> None:
    """One prior matched, no mining: SmoothL1 of (pred - encoded box) plus softmax losses of
    every prior, divided by the one positive (VALID)."""
    prior = priors_blob([PRIOR, [.7, .7, .9, .9]])
    gt = gt_rows([[0, 1, 0, *BOX, 0]])
    loc = np.array([[2.0, 2.5, 0.3, 1.5, 0, 0, 0, 0]], np.float32)
    conf = np.array([[0.0, 1.0, 2.0, 0.0]], np.float32)  # 2 priors x 2 classes
    p = ref.Params(num_classes=2, mining=ref.NONE_MINING)
    loss, gl, gc = run(loc, conf, prior, gt, p)
    t = [1, 0, .5, 1]  # CORNER encoding of BOX against PRIOR
    d = [2.0 - t[0], 2.5 - t[1], 0.3 - t[2], 1.5 - t[3]]
    sl1 = sum(0.5 * x * x if abs(x) < 1 else abs(x) - 0.5 for x in d)
    ce = -math.log(math.exp(1) / (1 + math.exp(1))) - math.log(math.exp(2) / (1 + math.exp(2)))
    assert loss == pytest.approx(sl1 + ce, rel=1e-6)
    assert gl[0, :4].tolist() == pytest.approx(
        [x if abs(x) < 1 else math.copysign(1, x) for x in d], abs=1e-6)
    assert gl[0, 4:].tolist() == [0, 0, 0, 0]  # the unmatched prior gets no loc gradient
    s0, s1 = 1 / (1 + math.exp(1)), 1 / (1 + math.exp(-2))
    assert gc[0].tolist() == pytest.approx([s0, -s0, s1 - 1, 1 - s1], abs=1e-6)  # p - 1[label]


# ------------------------------------------------------------------------------- mining


def mining_case():
    """One image, six priors: prior 0 matches the box; prior 1 overlaps it by 0.4 (below
    overlap_threshold 0.5: unmatched; not below neg_overlap 0.3: no candidate); priors 2-5
    are candidates with background losses in the order 4 > 2 > 5 > 3."""
    boxes = [[0, 0, .5, .5], [0, 0, .5, .2], [.6, .6, .7, .7], [.6, .6, .8, .8],
             [.1, .6, .3, .9], [.7, .1, .9, .3]]
    prior = priors_blob(boxes)
    gt = gt_rows([[0, 1, 0, 0, 0, .5, .5, 0]])
    loc = np.zeros((1, 24), np.float32)
    conf = np.zeros((1, 12), np.float32)  # 2 classes
    obj = {1: 5.0, 2: 1.0, 3: -2.0, 4: 3.0, 5: 0.0}  # object score: higher = worse negative
    for j, s in obj.items():
        conf[0, 2 * j + 1] = s
    return loc, conf, prior, gt


def test_max_negative_picks_the_hardest_candidates() -> None:
    loc, conf, prior, gt = mining_case()
    p = ref.Params(num_classes=2, neg_pos_ratio=2.0, neg_overlap=0.3)
    loss, _, gc = run(loc, conf, prior, gt, p)
    scored = [j for j in range(6) if np.any(gc[0, 2 * j: 2 * j + 2] != 0)]
    assert scored == [0, 2, 4]  # the positive, then 4 and 2 (1 is not a candidate)
    bg = [-math.log(1 / (1 + math.exp(conf[0, 2 * j + 1]))) for j in (2, 4)]
    pos = -math.log(math.exp(0) / 2)
    assert loss == pytest.approx(pos + sum(bg), rel=1e-6)  # loc: pred 0 = target 0


def test_neg_pos_ratio_truncates() -> None:
    loc, conf, prior, gt = mining_case()
    p = ref.Params(num_classes=2, neg_pos_ratio=1.9, neg_overlap=0.3)  # int(1 * 1.9) = 1 negative
    _, _, gc = run(loc, conf, prior, gt, p)
    assert [j for j in range(6) if np.any(gc[0, 2 * j: 2 * j + 2])] == [0, 4]


def test_nms_among_the_candidates() -> None:
    """With nms_param the candidates go through greedy NMS by loss first. Ranked 4, 2, 5, 3;
    prior 2 lies inside prior 3 (overlap 0.25): a threshold of 0.3 keeps all four, one of
    0.2 drops 3. top_k 0 (the proto's default) keeps no candidate at all."""
    loc, conf, prior, gt = mining_case()
    p = ref.Params(num_classes=2, neg_pos_ratio=4.0, neg_overlap=0.3, nms_threshold=0.3,
                   nms_top_k=-1, use_prior_for_nms=True)

    def scored(q: ref.Params) -> list[int]:
        gc = run(loc, conf, prior, gt, q)[2]
        return [j for j in range(6) if np.any(gc[0, 2 * j: 2 * j + 2])]

    assert scored(p) == [0, 2, 3, 4, 5]
    assert scored(dataclasses.replace(p, nms_threshold=0.2)) == [0, 2, 4, 5]
    assert scored(dataclasses.replace(p, nms_top_k=2)) == [0, 2, 4]
    assert scored(dataclasses.replace(p, nms_top_k=0)) == [0]


def test_hard_example_keeps_sample_size() -> None:
    loc, conf, prior, gt = mining_case()
    p = ref.Params(num_classes=2, mining=ref.HARD_EXAMPLE, sample_size=2)
    loss, _, gc = run(loc, conf, prior, gt, p)
    # every prior is ranked; 1 (object score 5) and 4 are kept; positive 0 (loss log 2)
    # falls out and stops being a positive; prior 1 (overlap 0.4, unmatched) is a negative
    assert [j for j in range(6) if np.any(gc[0, 2 * j: 2 * j + 2])] == [1, 4]
    bg = [-math.log(1 / (1 + math.exp(conf[0, 2 * j + 1]))) for j in (1, 4)]
    assert loss == pytest.approx(sum(bg), rel=1e-6)  # no positive left: normalizer 1


# ------------------------------------------------------------------------ normalisation


@pytest.mark.parametrize(("mode", "divisor"), [
    (LP.FULL, 2 * 6), (LP.VALID, 2), (LP.BATCH_SIZE, 2), (LP.NONE, 1),
])
def test_normalizations(mode: int, divisor: int) -> None:
    loc, conf, prior, gt = mining_case()
    loc = np.concatenate([loc, loc + 0.3])
    conf = np.concatenate([conf, conf])
    gt = gt_rows([[0, 1, 0, 0, 0, .5, .5, 0], [1, 1, 0, 0, 0, .5, .5, 0]])
    base = ref.Params(num_classes=2, normalization=ref.NONE_NORM)
    total, gl, _ = run(loc, conf, prior, gt, base)
    loss, gl2, _ = run(loc, conf, prior, gt, dataclasses.replace(base, normalization=mode))
    assert loss == pytest.approx(total / divisor, rel=1e-6)  # two positives, two images
    np.testing.assert_allclose(gl2, gl / divisor, rtol=1e-6)


def test_no_box_in_the_batch() -> None:
    loc, conf, prior, _ = mining_case()
    gt = np.full((1, 1, 1, 8), -1, np.float32)
    loss, gl, gc = run(loc, conf, prior, gt, ref.Params(num_classes=2))
    assert loss == 0 and not gl.any() and not gc.any()  # mining: nothing is scored
    loss, _, gc = run(loc, conf, prior, gt, ref.Params(num_classes=2, mining=ref.NONE_MINING))
    # no mining: every prior is background; VALID with no positive divides by 1
    expect = sum(math.log(1 + math.exp(conf[0, 2 * j + 1])) for j in range(6))
    assert loss == pytest.approx(expect, rel=1e-6)


def test_difficult_boxes_and_propagate_down() -> None:
    loc, conf, prior, _ = mining_case()
    gt = gt_rows([[0, 1, 0, 0, 0, .5, .5, 1]])  # difficult
    p = ref.Params(num_classes=2, use_difficult_gt=False)
    assert run(loc, conf, prior, gt, p)[0] == 0
    both = run(loc + 0.5, conf, prior, gt, dataclasses.replace(p, use_difficult_gt=True))
    conf_only = run(loc + 0.5, conf, prior, gt,
                    dataclasses.replace(p, use_difficult_gt=True, propagate=(False, True)))
    assert 0 < conf_only[0] < both[0]
    assert not conf_only[1].any() and conf_only[2].any()


# ---------------------------------------------------------------- against the reference


def random_case(rng: np.random.Generator, num: int, npri: int, nc: int, lc: int, bg: int = 0):
    centers = rng.uniform(-0.05, 1.05, (npri, 2))
    sizes = rng.uniform(0.1, 0.5, (npri, 2))
    boxes = np.concatenate([centers - sizes / 2, centers + sizes / 2], axis=1)
    prior = priors_blob(boxes, var=rng.uniform(0.1, 0.3, 4))
    rows = []
    for item in range(num - 1):  # the last image has no box
        for _ in range(rng.integers(1, 4)):
            c = rng.uniform(0.2, 0.8, 2)
            s = rng.uniform(0.15, 0.5, 2)
            label = rng.choice([c for c in range(nc) if c != bg])
            rows.append([item, label, 0, *(c - s / 2), *(c + s / 2),
                         float(rng.random() < 0.2)])
    rows.append([-1] * 8)  # padding rows are skipped
    loc = rng.normal(0, 0.8, (num, npri * lc * 4)).astype(np.float32)
    conf = rng.normal(0, 1.5, (num, npri * nc)).astype(np.float32)
    return loc, conf, prior, gt_rows(rows)


CASES = [
    ref.Params(num_classes=4),
    ref.Params(num_classes=4, conf_loss=ref.LOGISTIC, code_type=ref.CENTER_SIZE),
    ref.Params(num_classes=4, mining=ref.NONE_MINING, conf_loss=ref.LOGISTIC),
    ref.Params(num_classes=4, mining=ref.NONE_MINING, match_type=ref.BIPARTITE,
               loc_loss=ref.L2, normalization=ref.FULL),
    ref.Params(num_classes=4, mining=ref.HARD_EXAMPLE, sample_size=7, code_type=ref.CORNER_SIZE),
    ref.Params(num_classes=4, share_location=False, mining=ref.NONE_MINING,
               code_type=ref.CENTER_SIZE),
    ref.Params(num_classes=4, share_location=False, mining=ref.NONE_MINING,
               use_prior_for_matching=False, overlap_threshold=0.3),
    ref.Params(num_classes=4, use_prior_for_matching=False, code_type=ref.CENTER_SIZE,
               overlap_threshold=0.3, bp_inside=True),
    ref.Params(num_classes=4, ignore_cross_boundary=True, bp_inside=True,
               code_type=ref.CENTER_SIZE, use_difficult_gt=False, loc_weight=2.5),
    ref.Params(num_classes=4, variance_in_target=True, code_type=ref.CENTER_SIZE,
               normalization=ref.BATCH_SIZE),
    ref.Params(num_classes=4, background=2, conf_loss=ref.LOGISTIC, neg_pos_ratio=1.5,
               neg_overlap=0.3),
    ref.Params(num_classes=2, map_object_to_agnostic=True, mining=ref.NONE_MINING,
               propagate=(True, False)),
    ref.Params(num_classes=4, nms_threshold=0.05, nms_top_k=-1, use_prior_for_nms=True),
    ref.Params(num_classes=4, mining=ref.HARD_EXAMPLE, sample_size=9, nms_threshold=0.1,
               nms_top_k=20, code_type=ref.CENTER_SIZE),
]


@pytest.mark.parametrize("case", range(len(CASES)))
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_the_reference(case: int, seed: int) -> None:
    p = CASES[case]
    rng = np.random.default_rng(100 * case + seed)
    lc = 1 if p.share_location else p.num_classes
    loc, conf, prior, gt = random_case(rng, 3, 40, p.num_classes, lc, p.background)
    if p.map_object_to_agnostic:
        gt[..., 1] = np.where(gt[..., 0] >= 0, 1, gt[..., 1])
    loss, gl, gc = run(loc, conf, prior, gt, p)
    want, wl, wc = ref.reference(loc, conf, prior, gt, p)
    assert want > 0
    assert loss == pytest.approx(want, rel=2e-5)
    np.testing.assert_allclose(gl, wl, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(gc, wc, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("case", [0, 1, 2, 3, 5, 8])
def test_gradcheck(case: int) -> None:
    """Where the loss is smooth (matching and mining fixed near the point; no straight-through
    variance trick) autograd's gradient is the loss's own."""
    p = CASES[case]
    rng = np.random.default_rng(7 + case)
    lc = 1 if p.share_location else p.num_classes
    loc, conf, prior, gt = random_case(rng, 2, 12, p.num_classes, lc, p.background)
    spec = spec_of(p)
    pt, gtt = torch.tensor(prior), torch.tensor(gt)
    lt = torch.tensor(loc, dtype=torch.float64, requires_grad=True)
    ct = torch.tensor(conf, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: multibox_loss(a, b, pt, gtt, spec), (lt, ct),
                                    eps=1e-6, atol=1e-5)


# ------------------------------------------------------------------------ the built layer

NET = """
layer {{ name: "in" type: "Input" top: "loc" top: "conf" top: "prior" top: "label"
  input_param {{ shape {{ dim: 1 dim: 24 }} shape {{ dim: 1 dim: 12 }}
                shape {{ dim: 1 dim: 2 dim: 24 }} shape {{ dim: 1 dim: 1 dim: 1 dim: 8 }} }} }}
layer {{ name: "loss" type: "MultiBoxLoss" bottom: "loc" bottom: "conf" bottom: "prior"
  bottom: "label" top: "loss" {extra}
  multibox_loss_param {{ {param} }} }}
"""


def build(tmp_path: Path, param: str = "num_classes: 2", extra: str = ""):
    path = tmp_path / "net.prototxt"
    path.write_text(NET.format(param=param, extra=extra))
    return c2t.load_net(path, phase="TRAIN")


def test_built_layer_and_loss_weight(tmp_path: Path) -> None:
    loc, conf, prior, gt = mining_case()
    feed = {"loc": torch.tensor(loc), "conf": torch.tensor(conf), "prior": torch.tensor(prior),
            "label": torch.tensor(gt)}
    net = build(tmp_path, "num_classes: 2 neg_pos_ratio: 2 neg_overlap: 0.3", "loss_weight: 2")
    assert net.blob_shapes["loss"] == ()
    out = net(**feed)
    p = ref.Params(num_classes=2, neg_pos_ratio=2, neg_overlap=0.3)
    want = ref.reference(loc, conf, prior, gt, p)[0]
    assert float(out["loss"]) == pytest.approx(want, rel=1e-6)
    assert float(net.loss(out)) == pytest.approx(2 * want, rel=1e-6)


@pytest.mark.parametrize(("param", "extra", "says"), [
    ("share_location: true", "", "num_classes is required"),
    ("num_classes: 2 share_location: false", "", "share_location: true"),
    ("num_classes: 2 do_neg_mining: false", "", "do_neg_mining"),
    ("num_classes: 2 background_label_id: 2", "", "background_label_id"),
    ("num_classes: 3 mining_type: NONE", "", "confidence bottom has 12 channels"),
    ("num_classes: 3 map_object_to_agnostic: true mining_type: NONE", "",
     "map_object_to_agnostic"),
])
def test_refusals(tmp_path: Path, param: str, extra: str, says: str) -> None:
    with pytest.raises(BuildError, match=says):
        build(tmp_path, param, extra)


@pytest.mark.parametrize(("row", "says"), [
    ([0, 0, 0, 0, 0, .5, .5, 0], "background label"),
    ([0, 5, 0, 0, 0, .5, .5, 0], "outside"),
])
def test_bad_ground_truth(row: list[float], says: str) -> None:
    loc, conf, prior, _ = mining_case()
    with pytest.raises(DataError, match=says):
        run(loc, conf, prior, gt_rows([row]), ref.Params(num_classes=2))
