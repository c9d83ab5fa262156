"""AbsVal: |x|, gradient sign(x) * dy (0 at x == 0)."""

import torch

from caffe2torch.layers import find_layer_spec
from tests.layers.helpers_core import build, golden_params, run_golden


@golden_params("AbsVal")
def test_golden(case_dir):
    run_golden(case_dir)


def test_v1_name():
    assert find_layer_spec("ABSVAL").type == "AbsVal"


def test_gradient_zero_at_zero():
    m = build('name: "a" type: "AbsVal" bottom: "x" top: "y"', [(3,)])
    x = torch.tensor([-1.5, 0.0, 2.0], requires_grad=True)
    m(x).backward(torch.tensor([2.0, 2.0, 2.0]))
    assert x.grad.tolist() == [-2.0, 0.0, 2.0]
