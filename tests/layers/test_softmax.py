"""Softmax along axis."""

import pytest
import torch

from caffe2torch.layers import find_layer_spec
from tests.layers.helpers_core import build, golden_params, run_golden


@golden_params("Softmax")
def test_golden(case_dir):
    run_golden(case_dir)


@pytest.mark.parametrize("alias", ["SOFTMAX", "softmax"])
def test_names(alias):
    assert find_layer_spec(alias).type == "Softmax"


def test_axis_and_caffe_backward():
    m = build(
        'name: "s" type: "Softmax" bottom: "x" top: "y" softmax_param { axis: 2 }', [(2, 3, 4)]
    )
    x = (torch.randn(2, 3, 4) * 50).requires_grad_(True)
    dy = torch.randn(2, 3, 4)
    y = m(x)
    torch.testing.assert_close(y.detach().sum(2), torch.ones(2, 3))
    y.backward(dy)
    yd = y.detach()
    torch.testing.assert_close(x.grad, (dy - (dy * yd).sum(2, keepdim=True)) * yd)
