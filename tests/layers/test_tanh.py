"""TanH: backward dy * (1 - y^2)."""

import torch

from caffe2torch.layers import find_layer_spec
from tests.layers.helpers_core import build, golden_params, run_golden


@golden_params("TanH")
def test_golden(case_dir):
    run_golden(case_dir)


def test_names():
    assert find_layer_spec("TANH").type == find_layer_spec("tanh").type == "TanH"


def test_backward_formula():
    m = build('name: "t" type: "TanH" bottom: "x" top: "y"', [(20,)])
    x = torch.linspace(-5, 5, 20, requires_grad=True)
    dy = torch.rand(20)
    y = m(x)
    y.backward(dy)
    torch.testing.assert_close(x.grad, dy * (1 - y.detach() ** 2))
