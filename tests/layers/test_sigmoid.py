"""Sigmoid: 1 / (1 + exp(-x)); Caffe's backward dy * y * (1 - y)."""

import torch

from caffe2torch.layers import find_layer_spec
from tests.layers.helpers_core import build, golden_params, run_golden


@golden_params("Sigmoid")
def test_golden(case_dir):
    run_golden(case_dir)


def test_names():
    assert find_layer_spec("SIGMOID").type == find_layer_spec("sigmoid").type == "Sigmoid"


def test_backward_is_y_times_one_minus_y():
    m = build('name: "s" type: "Sigmoid" bottom: "x" top: "y"', [(50,)])
    x = torch.linspace(-30, 30, 50, requires_grad=True)
    dy = torch.rand(50)
    y = m(x)
    y.backward(dy)
    torch.testing.assert_close(x.grad, dy * y.detach() * (1 - y.detach()))
    assert torch.isfinite(y).all()
