"""NormL2 (arcface-caffe) against NumPy."""

from __future__ import annotations

import numpy as np
import torch

from tests.layers.helpers_core import build


def test_matches_fork() -> None:
    m = build('name: "n" type: "NormL2" bottom: "x" top: "y"', [(3, 2, 2, 2)])
    x = torch.randn(3, 2, 2, 2, requires_grad=True)
    y = m(x)
    g = torch.randn_like(y)
    y.backward(g)
    xf = x.detach().double().numpy().reshape(3, -1)
    gf = g.double().numpy().reshape(3, -1)
    norm = np.sqrt((xf * xf).sum(1, keepdims=True) + 1e-7)
    yf = xf / norm
    gx = (gf - yf * (yf * gf).sum(1, keepdims=True)) / norm
    np.testing.assert_allclose(y.detach().numpy().reshape(3, -1), yf, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(x.grad.numpy().reshape(3, -1), gx, rtol=1e-4, atol=1e-6)


def test_top_is_4d() -> None:
    m = build('name: "n" type: "NormL2" bottom: "x" top: "y"', [(3, 5)])
    assert tuple(m(torch.randn(3, 5)).shape) == (3, 5, 1, 1)
