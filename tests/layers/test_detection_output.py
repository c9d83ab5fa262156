"""DetectionOutput (SSD): decode, per-class NMS, keep_top_k; (1, 1, N, 7) rows
[image_id, label, score, xmin, ymin, xmax, ymax]."""

import math

import numpy as np
import pytest
import torch

from caffe2torch.errors import BuildError
from tests.layers.helpers_core import build, top_shapes

F = np.float32
CORNER, CENTER_SIZE, CORNER_SIZE = 1, 2, 3


def size_ref(b):
    if b[2] < b[0] or b[3] < b[1]:
        return F(0)
    return F(F(b[2] - b[0]) * F(b[3] - b[1]))


def decode_ref(prior, var, loc, code, in_target):
    """DecodeBBox, one box."""
    v = [F(1)] * 4 if in_target else var
    if code == CORNER:
        if in_target:
            return [F(prior[i] + loc[i]) for i in range(4)]
        return [F(prior[i] + F(var[i] * loc[i])) for i in range(4)]
    pw, ph = F(prior[2] - prior[0]), F(prior[3] - prior[1])
    if code == CORNER_SIZE:
        sizes = [pw, ph, pw, ph]
        return [F(prior[i] + F(F(v[i] * loc[i]) * sizes[i])) for i in range(4)]
    pcx = F(float(F(prior[0] + prior[2])) / 2.0)
    pcy = F(float(F(prior[1] + prior[3])) / 2.0)
    cx = F(F(F(v[0] * loc[0]) * pw) + pcx)
    cy = F(F(F(v[1] * loc[1]) * ph) + pcy)
    w = F(math.exp(float(F(v[2] * loc[2]))) * float(pw))
    h = F(math.exp(float(F(v[3] * loc[3]))) * float(ph))
    return [
        F(float(cx) - float(w) / 2.0),
        F(float(cy) - float(h) / 2.0),
        F(float(cx) + float(w) / 2.0),
        F(float(cy) + float(h) / 2.0),
    ]


def jaccard_ref(b1, b2):
    if b2[0] > b1[2] or b2[2] < b1[0] or b2[1] > b1[3] or b2[3] < b1[1]:
        return F(0)
    iw = F(min(b1[2], b2[2]) - max(b1[0], b2[0]))
    ih = F(min(b1[3], b2[3]) - max(b1[1], b2[1]))
    if iw > 0 and ih > 0:
        inter = F(iw * ih)
        return F(inter / F(F(size_ref(b1) + size_ref(b2)) - inter))
    return F(0)


def nms_ref(boxes, scores, conf_thr, nms_thr, eta, top_k):
    pairs = [(scores[i], i) for i in range(len(scores)) if scores[i] > conf_thr]
    pairs.sort(key=lambda p: -p[0])  # std::stable_sort, descending
    if top_k > -1:
        pairs = pairs[:top_k]
    kept, thr = [], F(nms_thr)
    for _, idx in pairs:
        keep = True
        for k in kept:
            if not keep:
                break
            keep = jaccard_ref(boxes[idx], boxes[k]) <= thr
        if keep:
            kept.append(idx)
            if eta < 1 and thr > 0.5:
                thr = F(thr * F(eta))
    return kept


def detection_output_ref(loc, conf, prior, p):
    num, num_priors = loc.shape[0], prior.shape[2] // 4
    c_num, share = p["num_classes"], p.get("share_location", True)
    n_loc = 1 if share else c_num
    loc = loc.reshape(num, num_priors, n_loc, 4)
    conf = conf.reshape(num, num_priors, c_num)
    pb = prior[0, 0].reshape(-1, 4)
    pv = prior[0, 1].reshape(-1, 4)
    bg = p.get("background_label_id", 0)
    rows = []
    for i in range(num):
        decoded = {}
        for c in range(n_loc):
            label = -1 if share else c
            if label == bg:
                continue
            decoded[label] = [
                decode_ref(
                    pb[k],
                    pv[k],
                    loc[i, k, c],
                    p.get("code_type", CORNER),
                    p.get("variance_encoded_in_target", False),
                )
                for k in range(num_priors)
            ]
        indices = {}
        for c in range(c_num):
            if c == bg:
                continue
            indices[c] = nms_ref(
                decoded[-1 if share else c],
                conf[i, :, c],
                p.get("confidence_threshold", -3.4e38),
                p.get("nms_threshold", 0.3),
                p.get("eta", 1.0),
                p.get("top_k", -1),
            )
        keep_top_k = p.get("keep_top_k", -1)
        if keep_top_k > -1 and sum(map(len, indices.values())) > keep_top_k:
            pairs = [(conf[i, k, c], c, k) for c in sorted(indices) for k in indices[c]]
            pairs.sort(key=lambda t: -t[0])
            new = {}
            for _, c, k in pairs[:keep_top_k]:
                new.setdefault(c, []).append(k)
            indices = new
        for c in sorted(indices):
            for k in indices[c]:
                rows.append([i, c, conf[i, k, c], *decoded[-1 if share else c][k]])
    if not rows:
        out = -np.ones((num, 7), F)
        out[:, 0] = np.arange(num)
        return out[None, None]
    return np.array(rows, F)[None, None]


def make_inputs(num, num_priors, num_classes, n_loc, seed):
    rng = np.random.default_rng(seed)
    cx, cy = rng.uniform(0.2, 0.8, (2, num_priors))
    w, h = rng.uniform(0.1, 0.4, (2, num_priors))
    boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], 1).astype(F)
    var = np.tile(np.array([0.1, 0.1, 0.2, 0.2], F), (num_priors, 1))
    prior = np.stack([boxes.reshape(-1), var.reshape(-1)])[None]
    loc = rng.normal(scale=0.5, size=(num, num_priors * n_loc * 4)).astype(F)
    logits = rng.normal(scale=2.0, size=(num, num_priors, num_classes))
    conf = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    return loc, conf.reshape(num, -1).astype(F), prior


def det_text(p):
    nms = f"nms_threshold: {p.get('nms_threshold', 0.3)}"
    if "top_k" in p:
        nms += f" top_k: {p['top_k']}"
    if "eta" in p:
        nms += f" eta: {p['eta']}"
    fields = [f"num_classes: {p['num_classes']}", f"nms_param {{ {nms} }}"]
    for key in ("background_label_id", "keep_top_k", "confidence_threshold"):
        if key in p:
            fields.append(f"{key}: {p[key]}")
    fields.append(f"share_location: {str(p.get('share_location', True)).lower()}")
    fields.append(
        f"code_type: {['', 'CORNER', 'CENTER_SIZE', 'CORNER_SIZE'][p.get('code_type', 1)]}"
    )
    if p.get("variance_encoded_in_target"):
        fields.append("variance_encoded_in_target: true")
    return (
        'name: "det" type: "DetectionOutput" bottom: "loc" bottom: "conf" bottom: "prior" '
        f'top: "det" detection_output_param {{ {" ".join(fields)} }}'
    )


CASES = {
    "mobilenet_ssd_deploy": {
        "num_classes": 6,
        "code_type": CENTER_SIZE,
        "nms_threshold": 0.45,
        "top_k": 100,
        "keep_top_k": 100,
        "confidence_threshold": 0.25,
    },
    "keep_top_k_cuts": {
        "num_classes": 5,
        "code_type": CENTER_SIZE,
        "nms_threshold": 0.5,
        "keep_top_k": 7,
        "confidence_threshold": 0.05,
    },
    "corner_in_target": {
        "num_classes": 3,
        "code_type": CORNER,
        "variance_encoded_in_target": True,
        "nms_threshold": 0.3,
    },
    "corner_size_adaptive_eta": {
        "num_classes": 4,
        "code_type": CORNER_SIZE,
        "nms_threshold": 0.7,
        "eta": 0.8,
        "top_k": 30,
        "confidence_threshold": 0.1,
    },
    "per_class_locations": {
        "num_classes": 4,
        "share_location": False,
        "code_type": CENTER_SIZE,
        "nms_threshold": 0.4,
        "confidence_threshold": 0.2,
        "background_label_id": 2,
    },
    "nothing_found": {"num_classes": 3, "code_type": CENTER_SIZE, "confidence_threshold": 0.999},
}


@pytest.mark.parametrize("case", list(CASES))
def test_matches_the_fork(case):
    p = CASES[case]
    num, num_priors = 2, 60
    n_loc = 1 if p.get("share_location", True) else p["num_classes"]
    loc, conf, prior = make_inputs(num, num_priors, p["num_classes"], n_loc, seed=len(case))
    shapes = [loc.shape, conf.shape, prior.shape]
    layer = build(det_text(p), shapes)
    assert top_shapes(layer, shapes) == [(1, 1, 1, 7)]
    out = layer(*(torch.from_numpy(a) for a in (loc, conf, prior)))
    expected = detection_output_ref(loc, conf, prior, p)
    assert out.shape == expected.shape
    np.testing.assert_array_equal(out.numpy(), expected)
    if case == "nothing_found":
        assert out.shape == (1, 1, num, 7)
    else:
        assert out.shape[2] > 1


def test_hand_made_nms():
    """Two overlapping boxes of one class: the weaker is suppressed, a distant one stays."""
    prior = np.array(
        [[[0.1, 0.1, 0.3, 0.3, 0.12, 0.1, 0.32, 0.3, 0.6, 0.6, 0.9, 0.9], [0.1] * 12]], F
    )
    loc = np.zeros((1, 12), F)
    conf = np.array([[0.1, 0.9, 0.2, 0.8, 0.3, 0.7]], F)  # background, class 1 per prior
    layer = build(
        det_text({"num_classes": 2, "nms_threshold": 0.45}), [loc.shape, conf.shape, prior.shape]
    )
    out = layer(*(torch.from_numpy(a) for a in (loc, conf, prior)))
    expected = np.array([[0, 1, 0.9, 0.1, 0.1, 0.3, 0.3], [0, 1, 0.7, 0.6, 0.6, 0.9, 0.9]], F)
    np.testing.assert_array_equal(out.numpy()[0, 0], expected)


def test_mismatched_prior_count_is_a_build_error():
    with pytest.raises(BuildError, match="location predictions"):
        build(det_text({"num_classes": 2}), [(1, 16), (1, 6), (1, 2, 12)])


def test_a_prior_of_zero_width_names_the_layer():
    """DecodeBBox CHECKs a positive prior width and height for CENTER_SIZE: the error
    raised on the values in forward names the layer, which the shapes cannot."""
    prior = np.array([[[0.1, 0.1, 0.1, 0.3, 0.2, 0.2, 0.4, 0.4], [0.1] * 8]], F)
    loc, conf = np.zeros((1, 8), F), np.full((1, 4), 0.5, F)
    layer = build(det_text({"num_classes": 2, "code_type": CENTER_SIZE}),
                  [loc.shape, conf.shape, prior.shape])
    with pytest.raises(BuildError, match=r"layer 'det' \(DetectionOutput\): CENTER_SIZE "
                                         "decoding needs priors of positive width"):
        layer(*(torch.from_numpy(a) for a in (loc, conf, prior)))
