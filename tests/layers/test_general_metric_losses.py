"""GeneralContrastiveLoss and GeneralTripletLoss (happynear/caffe-windows, NormFace) against a
loop-by-loop NumPy transcription of the fork's Forward_cpu and Backward_cpu, option by
option; the second top (mean distances) carries no gradient."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.layers.helpers_core import build

C_DEFAULTS = dict(positive_margin=0.0, negative_margin=1.0, positive_weight=1.0,
                  negative_weight=1.0, positive_outlier_thresh=4.0, max_negative_only=False,
                  max_positive_only=False, positive_first=False, positive_upper_bound=1.0,
                  exp_negative_weight=False, normalize_negative=None)


def contrastive_ref(d, y, top_diff, **kw):
    o = {**C_DEFAULTS, **kw}
    num, dim = d.shape
    diff = np.zeros_like(d)
    pos_dist = neg_dist = 0.0
    max_pos = 0
    max_neg = np.zeros(num, dtype=int)
    m_neg = o["negative_margin"]
    for i in range(num):
        same = d[i, y[i]]
        for j in range(dim):
            if j == y[i]:
                t = min(o["positive_outlier_thresh"], max(0.0, d[i, j] - o["positive_margin"]))
                diff[i, j] = t * o["positive_weight"]
                pos_dist += t
                if o["max_positive_only"] and diff[i, j] < diff[max_pos, y[max_pos]]:
                    max_pos = i
            elif d[i, j] < m_neg:
                base = np.exp(-d[i, j]) if o["exp_negative_weight"] else max(0, m_neg - d[i, j])
                diff[i, j] = base * o["negative_weight"]
                neg_dist += max(0.0, m_neg - d[i, j])
                if o["max_negative_only"] and diff[i, j] > diff[i, max_neg[i]]:
                    max_neg[i] = j
        if o["positive_first"] and same > o["positive_upper_bound"]:
            diff[i, np.arange(dim) != y[i]] = 0
    for i in range(num):
        for j in range(dim):
            if o["max_positive_only"] and j == y[i] and i != max_pos:
                diff[i, j] = 0
            if o["max_negative_only"] and j != y[i] and j != max_neg[i]:
                diff[i, j] = 0
    loss = np.abs(diff).sum() / num
    distances = [pos_dist / num, neg_dist / num / (dim - 1)]
    grad = np.zeros_like(d)
    neg_sum = 0.0
    for i in range(num):
        if o["positive_first"] and d[i, y[i]] > o["positive_upper_bound"]:
            grad[i, y[i]] = o["positive_weight"]
            continue
        for j in range(dim):
            v = d[i, j]
            if j == y[i]:
                ok = o["positive_margin"] < v < o["positive_outlier_thresh"]
                ok = ok and not (o["max_positive_only"] and i != max_pos)
                grad[i, j] = o["positive_weight"] if ok else 0
            elif v < m_neg and not (o["max_negative_only"] and j != max_neg[i]):
                w = np.exp(-v) * o["negative_weight"] if o["exp_negative_weight"] else (
                    o["negative_weight"])
                grad[i, j] = -w
                neg_sum += w
    if o["normalize_negative"] is not None:
        scale = abs(neg_sum) / o["normalize_negative"] / num
        if scale > o["positive_weight"]:
            for i in range(num):
                grad[i, np.arange(dim) != y[i]] /= scale
    return loss, distances, grad * top_diff / num


def triplet_ref(d, y, top_diff, weights=None, margin=0.2, add_center_loss=True,
                hardest_only=False, positive_first=False, positive_upper_bound=1.0,
                positive_weight=1.0, negative_weight=1.0):
    num, dim = d.shape
    diff = np.zeros_like(d)
    hardest = -np.ones(num, dtype=int)
    pos = neg = 0.0
    for i in range(num):
        same = d[i, y[i]]
        pos += same
        for j in range(dim):
            if j == y[i]:
                continue
            diff[i, j] = max(0.0, same + margin - d[i, j]) * negative_weight
            neg += d[i, j]
            if hardest_only and diff[i, j] > 0 and (hardest[i] < 0 or
                                                   diff[i, j] > diff[i, hardest[i]]):
                hardest[i] = j
        if hardest_only and hardest[i] >= 0:
            for j in range(dim):
                if j != y[i] and j != hardest[i]:
                    diff[i, j] = 0
        if positive_first and same > positive_upper_bound:
            diff[i, np.arange(dim) != y[i]] = 0
    loss = np.abs(diff).sum() / num
    distances = [pos / num, neg / num / (dim - 1)]
    grad = diff.copy()  # the fork's backward starts from what its forward left
    for i in range(num):
        same = d[i, y[i]]
        if positive_first and same > positive_upper_bound:
            grad[i] = 0
            grad[i, y[i]] = positive_weight
            continue
        count = 0
        if hardest_only:
            if hardest[i] >= 0 and d[i, hardest[i]] != 0:
                grad[i, hardest[i]] = -negative_weight
                count += 1
        else:
            for j in range(dim):
                if j != y[i]:
                    grad[i, j] = -negative_weight if same + margin > d[i, j] else 0
                    count += grad[i, j] != 0
        if add_center_loss or count > 0:
            grad[i, y[i]] = positive_weight
    if weights is not None:
        grad = grad * weights[:, None]
    return loss, distances, grad * top_diff / num


def contrastive_text(params: str) -> str:
    return f"""name: "c" type: "GeneralContrastiveLoss" bottom: "d" bottom: "label"
        top: "loss" top: "mean_distance" loss_weight: 1 loss_weight: 1
        general_contrastive_loss_param {{ {params} }}"""


def triplet_text(params: str, weights: bool = False) -> str:
    extra = 'bottom: "w"' if weights else ""
    return f"""name: "t" type: "GeneralTripletLoss" bottom: "d" bottom: "label" {extra}
        top: "loss" top: "mean_distance" general_triplet_loss_param {{ {params} }}"""


def sample(seed: int = 0, num: int = 6, dim: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    d = torch.rand(num, dim, generator=gen) * 1.6
    y = torch.randint(0, dim, (num,), generator=gen).float()
    return d, y


CONTRASTIVE_CASES = {
    "defaults": {},
    "corpus_normface": dict(positive_margin=0.0, negative_margin=1.0, negative_weight=1.0),
    "margins_weights": dict(positive_margin=0.2, negative_margin=1.2, positive_weight=2.0,
                            negative_weight=0.5, positive_outlier_thresh=0.9),
    "max_negative_only": dict(max_negative_only=True),
    "max_positive_only": dict(max_positive_only=True),
    "positive_first": dict(positive_first=True, positive_upper_bound=0.6),
    "exp_negative_weight": dict(exp_negative_weight=True, negative_margin=1.3),
    "normalize_negative": dict(normalize_negative=0.5),
}


def _params(kw: dict) -> str:
    return " ".join(f"{k}: {str(v).lower() if isinstance(v, bool) else v}"
                    for k, v in kw.items() if v is not None)


@pytest.mark.parametrize("case", CONTRASTIVE_CASES, ids=list(CONTRASTIVE_CASES))
def test_general_contrastive_matches_fork(case: str) -> None:
    kw = CONTRASTIVE_CASES[case]
    d, y = sample(1)
    m = build(contrastive_text(_params(kw)), [tuple(d.shape), tuple(y.shape)])
    x = d.clone().requires_grad_(True)
    loss, distances = m(x, y)
    (0.7 * loss + distances.sum()).backward()
    ref_loss, ref_dist, ref_grad = contrastive_ref(d.double().numpy(), y.long().numpy(), 0.7,
                                                   **kw)
    assert loss.item() == pytest.approx(ref_loss, rel=1e-5)
    np.testing.assert_allclose(distances.detach().numpy(), ref_dist, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(x.grad.numpy(), ref_grad, rtol=1e-5, atol=1e-7)


def test_general_contrastive_intra_mae_raises_the_margin() -> None:
    m = build(contrastive_text("add_intra_mae: true max_negative_margin: 0.05"),
              [(6, 5), (6,)])
    d, y = sample(2)
    margins = []
    for _ in range(3):
        loss, distances = m(d, y)
        assert distances.shape == (3,)
        margins.append(float(distances[2]))
    # the running mean starts at 0 and is capped by max_negative_margin
    pos_mean = contrastive_ref(d.double().numpy(), y.long().numpy(), 1.0)[1][0]
    assert margins[0] == pytest.approx(0.01 * pos_mean, rel=1e-5)
    assert max(margins) <= 0.05 + 1e-7
    ref = contrastive_ref(d.double().numpy(), y.long().numpy(), 1.0,
                          negative_margin=1.0 + margins[1])[0]
    assert loss.item() == pytest.approx(ref, rel=1e-5)


def test_general_contrastive_three_bottoms_reads_bottom_2() -> None:
    text = contrastive_text("").replace('bottom: "label"', 'bottom: "label" bottom: "v"')
    d, y = sample(3)
    m = build(text, [(6, 5), (6,), (6, 5)])
    x = torch.zeros(6, 5, requires_grad=True)
    loss, _ = m(x, y, d)
    loss.backward()
    ref_loss, _, ref_grad = contrastive_ref(d.double().numpy(), y.long().numpy(), 1.0)
    assert loss.item() == pytest.approx(ref_loss, rel=1e-5)
    np.testing.assert_allclose(x.grad.numpy(), ref_grad, rtol=1e-5, atol=1e-7)


TRIPLET_CASES = {
    "defaults": {},
    "corpus_normface": dict(margin=0.8, add_center_loss=True, hardest_only=True,
                            negative_weight=1.0),
    "no_center_loss": dict(margin=0.3, add_center_loss=False),
    "positive_first": dict(positive_first=True, positive_upper_bound=0.7, margin=0.5),
    "weights": dict(margin=0.4, positive_weight=2.0, negative_weight=0.5),
}


@pytest.mark.parametrize("case", TRIPLET_CASES, ids=list(TRIPLET_CASES))
def test_general_triplet_matches_fork(case: str) -> None:
    kw = TRIPLET_CASES[case]
    d, y = sample(4)
    d[0, 1] = 0.0  # a zero distance: the fork's hardest_only test reads bottom_data != 0
    m = build(triplet_text(_params(kw)), [tuple(d.shape), tuple(y.shape)])
    x = d.clone().requires_grad_(True)
    loss, distances = m(x, y)
    (1.5 * loss).backward()
    ref_loss, ref_dist, ref_grad = triplet_ref(d.double().numpy(), y.long().numpy(), 1.5, **kw)
    assert loss.item() == pytest.approx(ref_loss, rel=1e-5)
    np.testing.assert_allclose(distances.detach().numpy(), ref_dist, rtol=1e-5)
    np.testing.assert_allclose(x.grad.numpy(), ref_grad, rtol=1e-5, atol=1e-7)


def test_general_triplet_per_item_weights() -> None:
    d, y = sample(5)
    w = torch.tensor([1.0, 0.0, 2.0, 0.5, 1.0, 3.0])
    m = build(triplet_text("margin: 0.5", weights=True), [(6, 5), (6,), (6,)])
    x = d.clone().requires_grad_(True)
    loss, _ = m(x, y, w)
    loss.backward()
    ref = triplet_ref(d.double().numpy(), y.long().numpy(), 1.0, weights=w.double().numpy(),
                      margin=0.5)
    np.testing.assert_allclose(x.grad.numpy(), ref[2], rtol=1e-5, atol=1e-7)
