"""SmoothL1Loss (py-faster-rcnn), SmoothL1LossOHEM, SoftmaxWithLossOHEM and BoxAnnotatorOHEM
(R-FCN) against NumPy transcriptions of the forks' formulas: loss, extra tops, gradients."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.layers.helpers_core import build


def f_sl1(x: np.ndarray, sigma2: float) -> np.ndarray:
    return np.where(np.abs(x) < 1 / sigma2, 0.5 * sigma2 * x * x, np.abs(x) - 0.5 / sigma2)


def df_sl1(x: np.ndarray, sigma2: float) -> np.ndarray:
    return np.where(np.abs(x) < 1 / sigma2, sigma2 * x, np.sign(x))


def rand(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("sigma", [1.0, 3.0])
@pytest.mark.parametrize("weighted", [False, True], ids=["plain", "inside_outside"])
def test_smooth_l1_loss(sigma: float, weighted: bool) -> None:
    bottoms = 'bottom: "p" bottom: "t"' + (' bottom: "wi" bottom: "wo"' if weighted else "")
    m = build(f"""name: "l" type: "SmoothL1Loss" {bottoms} top: "loss"
              smooth_l1_loss_param {{ sigma: {sigma} }}""", [(3, 8, 2, 2)] * (4 if weighted else 2))
    p, t = rand(3, 8, 2, 2, seed=1).requires_grad_(), rand(3, 8, 2, 2, seed=2).requires_grad_()
    wi = (rand(3, 8, 2, 2, seed=3) > 0).float()
    wo = torch.rand(3, 8, 2, 2)
    loss = m(p, t, wi, wo) if weighted else m(p, t)
    (2.0 * loss).backward()
    s2 = sigma * sigma
    pn, tn = p.detach().double().numpy(), t.detach().double().numpy()
    win = wi.double().numpy() if weighted else 1.0
    won = wo.double().numpy() if weighted else 1.0
    x = win * (pn - tn)
    assert loss.item() == pytest.approx((won * f_sl1(x, s2)).sum() / 3, rel=1e-5)
    grad = 2.0 / 3 * won * win * df_sl1(x, s2)
    np.testing.assert_allclose(p.grad.numpy(), grad, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(t.grad.numpy(), -grad, rtol=1e-5, atol=1e-6)


def test_smooth_l1_loss_three_bottoms_is_rfcn_rule() -> None:
    # py-faster-rcnn refuses three bottoms; daijifeng001/caffe-rfcn's SmoothL1Loss takes
    # one weight bottom (its SmoothL1LossOHEM rule)
    layer = build('name: "l" type: "SmoothL1Loss" bottom: "a" bottom: "b" bottom: "c" '
                  'top: "l"', [(2, 4)] * 3)
    ohem = build('name: "l" type: "SmoothL1LossOHEM" bottom: "a" bottom: "b" bottom: "c" '
                 'top: "l"', [(2, 4)] * 3)
    a, b, c = rand(2, 4, seed=1), rand(2, 4, seed=2), torch.rand(2, 4)
    torch.testing.assert_close(layer(a, b, c), ohem(a, b, c))


@pytest.mark.parametrize(
    ("loss_param", "normalizer"),
    [("", 2 * 3), ("normalization: BATCH_SIZE", 2),
     ("normalization: PRE_FIXED pre_fixed_normalizer: 128", 128),
     ("normalization: NONE", 1)],
    ids=["valid", "batch_size", "pre_fixed", "none"],
)
def test_smooth_l1_loss_ohem(loss_param: str, normalizer: float) -> None:
    m = build(f"""name: "l" type: "SmoothL1LossOHEM" bottom: "p" bottom: "t" bottom: "w"
              top: "loss" top: "per_roi" loss_param {{ {loss_param} }}""", [(2, 4, 3, 1)] * 3)
    p = rand(2, 4, 3, 1, seed=4).requires_grad_()
    t = rand(2, 4, 3, 1, seed=5)
    w = torch.rand(2, 4, 3, 1) * 2
    loss, per_roi = m(p, t, w)
    loss.backward()
    x = w.double().numpy() * (p.detach().double().numpy() - t.double().numpy())
    errors = f_sl1(x, 1.0)
    assert loss.item() == pytest.approx(errors.sum() / normalizer, rel=1e-5)
    assert per_roi.shape == (2, 1, 3, 1)
    np.testing.assert_allclose(per_roi.numpy(), errors.sum(axis=1, keepdims=True), rtol=1e-5)
    # the fork's gradient leaves out the weight w
    np.testing.assert_allclose(p.grad.numpy(), df_sl1(x, 1.0) / normalizer, rtol=1e-5,
                               atol=1e-7)


def test_softmax_with_loss_ohem_per_item_loss() -> None:
    m = build("""name: "l" type: "SoftmaxWithLossOHEM" bottom: "s" bottom: "y" top: "loss"
              top: "prob" top: "per_roi" loss_param { ignore_label: -1 }""", [(5, 4), (5,)])
    s = rand(5, 4, seed=6).requires_grad_()
    y = torch.tensor([0.0, 3.0, -1.0, 2.0, 1.0])
    loss, prob, per_roi = m(s, y)
    loss.backward()
    e = np.exp(s.detach().double().numpy())
    pn = e / e.sum(axis=1, keepdims=True)
    valid = y.numpy() >= 0
    idx = np.where(valid, y.numpy(), 0).astype(int)
    terms = np.where(valid, -np.log(pn[np.arange(5), idx]), 0)
    np.testing.assert_allclose(per_roi.numpy(), terms, rtol=1e-5)
    assert loss.item() == pytest.approx(terms.sum() / valid.sum(), rel=1e-5)
    np.testing.assert_allclose(prob.numpy(), pn, rtol=1e-5)
    grad = pn.copy()
    grad[np.arange(5), idx] -= 1
    grad[~valid] = 0
    np.testing.assert_allclose(s.grad.numpy(), grad / valid.sum(), rtol=1e-5, atol=1e-7)


def test_box_annotator_ohem_keeps_the_hardest_per_image() -> None:
    m = build("""name: "a" type: "BoxAnnotatorOHEM" bottom: "rois" bottom: "loss"
              bottom: "labels" bottom: "w" top: "labels_ohem" top: "w_ohem"
              box_annotator_ohem_param { roi_per_img: 2 ignore_label: -1 }""",
              [(6, 5), (6,), (6,), (6, 8)])
    rois = torch.zeros(6, 5)
    rois[:, 0] = torch.tensor([0.0, 0, 0, 1, 1, 1])
    loss = torch.tensor([0.5, 2.0, 1.0, 0.1, 0.3, 0.2])
    labels = torch.tensor([3.0, 4, 5, 6, 7, 8])
    w = torch.arange(48, dtype=torch.float32).reshape(6, 8)
    top_labels, top_w = m(rois, loss, labels, w)
    assert top_labels.shape == (6, 1, 1, 1) and top_w.shape == (6, 8, 1, 1)
    # image 0 keeps rois 1 and 2 (losses 2.0, 1.0); image 1 keeps rois 4 and 5
    want_labels = np.array([-1, 4, 5, -1, 7, 8], dtype=np.float32)
    np.testing.assert_array_equal(top_labels.reshape(6).numpy(), want_labels)
    kept = want_labels >= 0
    np.testing.assert_array_equal(top_w.reshape(6, 8).numpy()[kept], w.numpy()[kept])
    assert not top_w.reshape(6, 8).numpy()[~kept].any()


def test_rfcn_smooth_l1_loss_with_two_tops_is_the_ohem_rule() -> None:
    # daijifeng001/caffe-rfcn's own SmoothL1Loss: a per-item second top and loss_param
    # normalization, as its SmoothL1LossOHEM
    shapes = [(2, 4, 3, 1)] * 2
    plain = build('name: "l" type: "SmoothL1Loss" bottom: "p" bottom: "t" top: "loss" '
                  'top: "per_roi"', shapes)
    ohem = build('name: "l" type: "SmoothL1LossOHEM" bottom: "p" bottom: "t" top: "loss" '
                 'top: "per_roi"', shapes)
    p, t = rand(2, 4, 3, 1, seed=1), rand(2, 4, 3, 1, seed=2)
    for a, b in zip(plain(p, t), ohem(p, t)):
        torch.testing.assert_close(a, b)
