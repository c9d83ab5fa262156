"""NormFace's "Normalize" (normalize_param) against NumPy; SSD's form is tested with the
SSD layers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.layers.helpers_core import build


def reference(x4, kind, top_diff, norm_diff=None):
    if kind == "L2":
        norm = np.sqrt((x4 * x4).sum(axis=1, keepdims=True) + 1e-6)
    else:
        norm = np.abs(x4).sum(axis=1, keepdims=True) + 1e-6
    y = x4 / norm
    a = (y * top_diff).sum(axis=1, keepdims=True)
    direction = y if kind == "L2" else np.sign(x4)
    gx = (top_diff - direction * a) / norm
    if norm_diff is not None:
        gx = gx + norm_diff * direction
    return y, norm, gx


@pytest.mark.parametrize("kind", ["L2", "L1"])
@pytest.mark.parametrize("shape", [(3, 5), (2, 4, 3, 2)], ids=["fc", "map"])
def test_matches_fork(kind: str, shape: tuple[int, ...]) -> None:
    m = build(f"""name: "n" type: "Normalize" bottom: "x" top: "y"
                  normalize_param {{ normalize_type: "{kind}" }}""", [shape])
    x = torch.randn(shape, requires_grad=True)
    y = m(x)
    x4 = x.detach().double().numpy().reshape(shape + (1,) * (4 - len(shape)))
    assert tuple(y.shape) == x4.shape  # the fork's top is 4-D
    g = torch.randn_like(y)
    y.backward(g)
    ref_y, _, ref_gx = reference(x4, kind, g.double().numpy())
    np.testing.assert_allclose(y.detach().numpy(), ref_y, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(x.grad.numpy().reshape(x4.shape), ref_gx, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("bp_norm", [False, True])
def test_norm_top(bp_norm: bool) -> None:
    m = build(f"""name: "n" type: "Normalize" bottom: "x" top: "y" top: "norm"
                  normalize_param {{ bp_norm: {str(bp_norm).lower()} }}""", [(3, 4)])
    x = torch.randn(3, 4, requires_grad=True)
    y, norm = m(x)
    gy, gn = torch.randn_like(y), torch.randn_like(norm)
    if bp_norm:
        torch.autograd.backward([y, norm], [gy, gn])
    else:
        assert not norm.requires_grad  # the fork passes no gradient through the norm
        y.backward(gy)
    x4 = x.detach().double().numpy().reshape(3, 4, 1, 1)
    ref_y, ref_norm, ref_gx = reference(x4, "L2", gy.double().numpy(),
                                        gn.double().numpy() if bp_norm else None)
    np.testing.assert_allclose(y.detach().numpy(), ref_y, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(norm.detach().numpy(), ref_norm, rtol=1e-5)
    np.testing.assert_allclose(x.grad.numpy().reshape(x4.shape), ref_gx, rtol=1e-4, atol=1e-5)


def test_bare_normalize_on_features_is_normface() -> None:
    # AM-Softmax and NormFace nets write `type: "Normalize"` with no parameter on fc features
    m = build('name: "norm1" type: "Normalize" bottom: "fc5" top: "norm1"', [(2, 512)])
    assert len(m.blobs) == 0
    x = torch.randn(2, 512)
    torch.testing.assert_close(m(x).reshape(2, 512), x / torch.sqrt((x * x).sum(1, True) + 1e-6))
