"""Swish: x * sigmoid(beta * x); Caffe's gradient dy * (beta * y + s * (1 - beta * y))."""

import pytest
import torch

from tests.layers.helpers_core import build, golden_params, run_golden


@golden_params("Swish")
def test_golden(case_dir):
    run_golden(case_dir)


@pytest.mark.parametrize("beta", [1.0, 0.5, 2.5])
def test_gradient_matches_caffe_formula(beta):
    m = build(
        f'name: "s" type: "Swish" bottom: "x" top: "y" swish_param {{ beta: {beta} }}', [(30,)]
    )
    x = torch.linspace(-6, 6, 30, requires_grad=True)
    dy = torch.rand(30)
    y = m(x)
    y.backward(dy)
    s = torch.sigmoid(beta * x.detach())
    yd = y.detach()
    torch.testing.assert_close(yd, x.detach() * s)
    torch.testing.assert_close(x.grad, dy * (beta * yd + s * (1 - beta * yd)))
