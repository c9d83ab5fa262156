"""BNLL: log(1 + exp(x)), stable for large |x|; gradient exp(x) / (1 + exp(x)), x clamped at 50."""

import math

import torch

from caffe2torch.layers import find_layer_spec
from tests.layers.helpers_core import build, golden_params, run_golden


@golden_params("BNLL")
def test_golden(case_dir):
    run_golden(case_dir)


def test_v0_name():
    assert find_layer_spec("bnll").type == "BNLL"


def test_large_inputs_stay_finite():
    m = build('name: "b" type: "BNLL" bottom: "x" top: "y"', [(5,)])
    x = torch.tensor([-200.0, -1.0, 0.0, 60.0, 500.0], requires_grad=True)
    y = m(x)
    y.backward(torch.ones(5))
    expected = [
        math.log1p(math.exp(-200.0)),
        math.log1p(math.exp(-1.0)),
        math.log(2.0),
        60.0,
        500.0,
    ]
    torch.testing.assert_close(y.detach(), torch.tensor(expected))
    torch.testing.assert_close(x.grad, torch.tensor([0.0, 1 / (1 + math.e), 0.5, 1.0, 1.0]))
