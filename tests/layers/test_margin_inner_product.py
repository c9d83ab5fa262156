"""MarginInnerProduct (SphereFace A-Softmax) against a NumPy transcription of the fork."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from tests.layers.helpers_core import build, top_shapes

KINDS = {"SINGLE": 1, "DOUBLE": 2, "TRIPLE": 3, "QUADRUPLE": 4}


def _sign(v: float) -> float:
    return float((v > 0) - (v < 0))


def reference(x, w, labels, kind, lam, top_diff):
    """The fork's forward and backward, one item and one class at a time."""
    w = w / np.sqrt((w * w).sum(axis=1, keepdims=True))
    top = x @ w.T
    gx = top_diff @ w
    gw = top_diff.T @ x
    if kind == "SINGLE":
        return top, gx, gw, w
    for i, y in enumerate(labels):
        xn = math.sqrt(float(x[i] @ x[i]))
        c = float(x[i] @ w[y]) / xn
        s0 = _sign(c)
        if kind == "DOUBLE":
            psi = 2 * s0 * c * c - 1
            cw, cx = 4 * s0 * c, -(2 * s0 * c * c + 1) / xn
        elif kind == "TRIPLE":
            s1 = _sign(abs(c) - 0.5)
            s2 = s0 * (1 + s1) - 2
            psi = s1 * (4 * c**3 - 3 * c) + s2
            cw, cx = s1 * (12 * c * c - 3), -(8 * s1 * c**3 - s2) / xn
        else:
            s3 = s0 * _sign(2 * c * c - 1)
            s4 = 2 * s0 + s3 - 3
            psi = s3 * (8 * c**4 - 8 * c * c + 1) + s4
            cw = s3 * (32 * c**3 - 16 * c)
            cx = -(s3 * (24 * c**4 - 8 * c * c - 1) - s4) / xn
        top[i, y] = (xn * psi + lam * (x[i] @ w[y])) / (1 + lam)
        n = math.hypot(cw, cx)
        cw, cx = cw / n, cx / n
        g = top_diff[i, y]
        gx[i] += -g * w[y] + g / (1 + lam) * (cw * w[y] + cx * x[i]) + lam / (1 + lam) * g * w[y]
    return top, gx, gw, w


def layer_text(kind: str, **extra: float) -> str:
    fields = " ".join(f"{k}: {v}" for k, v in extra.items())
    return f"""
        name: "fc6" type: "MarginInnerProduct" bottom: "x" bottom: "label"
        top: "fc6" top: "lambda"
        margin_inner_product_param {{ num_output: 7 type: {kind}
          weight_filler {{ type: "gaussian" std: 1 }} {fields} }}"""


@pytest.mark.parametrize("kind", list(KINDS))
def test_forward_backward_match_fork(kind: str) -> None:
    torch.manual_seed(0)
    m = build(layer_text(kind, base=10, gamma=0.5, power=1, lambda_min=2), [(6, 5), (6,)],
              phase="TRAIN")
    x = torch.randn(6, 5, dtype=torch.float32, requires_grad=True)
    labels = torch.tensor([0, 3, 6, 2, 2, 5], dtype=torch.float32)
    w0 = m.blobs[0].detach().clone().numpy().astype(np.float64)
    top, lam = m(x, labels)
    # iteration 1: lambda = max(2, 10 / (1 + 0.5)) = 6.6667
    assert lam.item() == pytest.approx(10 / 1.5, rel=1e-6)
    diff = torch.randn_like(top)
    top.backward(diff)
    ref_top, ref_gx, ref_gw, ref_w = reference(
        x.detach().numpy().astype(np.float64), w0, labels.long().numpy(), kind, lam.item(),
        diff.numpy().astype(np.float64),
    )
    np.testing.assert_allclose(top.detach().numpy(), ref_top, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(x.grad.numpy(), ref_gx, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(m.blobs[0].grad.numpy(), ref_gw, rtol=1e-4, atol=1e-4)
    # the fork normalises the weight blob itself
    np.testing.assert_allclose(m.blobs[0].detach().numpy(), ref_w, rtol=1e-5, atol=1e-6)


def test_lambda_schedule_counts_forwards_per_mode() -> None:
    m = build(layer_text("DOUBLE", base=1000, gamma=0.12, power=1, lambda_min=5, iteration=10),
              [(2, 3), (2,)], phase="TRAIN")
    x, lab = torch.randn(2, 3), torch.tensor([0.0, 1.0])
    seen = [m(x, lab)[1].item() for _ in range(3)]
    expected = [max(5.0, 1000 / (1 + 0.12 * it)) for it in (11, 12, 13)]
    assert seen == pytest.approx(expected, rel=1e-6)
    m.eval()  # the TEST net has its own counter
    assert m(x, lab)[1].item() == pytest.approx(1000 / (1 + 0.12 * 11), rel=1e-6)
    m.train()
    assert m(x, lab)[1].item() == pytest.approx(max(5.0, 1000 / (1 + 0.12 * 14)), rel=1e-6)
    # lambda_min is the floor
    for _ in range(2000):
        m(x, lab)
    assert m(x, lab)[1].item() == pytest.approx(5.0)


def test_shapes_and_errors() -> None:
    m = build(layer_text("SINGLE"), [(4, 2, 3, 3), (4,)])
    assert top_shapes(m, [(4, 2, 3, 3), (4,)]) == [(4, 7), (1,)]
    assert m.iteration == 0  # shape inference does not count as a forward
    from caffe2torch.errors import BuildError

    with pytest.raises(BuildError, match="one label per item"):
        build(layer_text("SINGLE"), [(4, 5), (3,)])
