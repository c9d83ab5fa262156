"""ReLU: max(x, 0) + negative_slope * min(x, 0); gradient negative_slope at x <= 0."""

import pytest
import torch

from caffe2torch.layers import find_layer_spec
from tests.layers.helpers_core import build, golden_params, run_golden


@golden_params("ReLU")
def test_golden(case_dir):
    run_golden(case_dir)


@pytest.mark.parametrize("alias", ["RELU", "relu"])
def test_v1_and_v0_names(alias):
    assert find_layer_spec(alias).type == "ReLU"


@pytest.mark.parametrize("slope", [0.0, 0.1])
def test_gradient_at_zero_is_the_slope(slope):
    relu = build(
        f'name: "r" type: "ReLU" bottom: "x" top: "x" relu_param {{ negative_slope: {slope} }}',
        [(4,)],
    )
    x = torch.tensor([-2.0, 0.0, 0.0, 3.0], requires_grad=True)
    y = relu(x)
    y.backward(torch.ones(4))
    s = torch.tensor(slope, dtype=torch.float32).item()
    torch.testing.assert_close(y.detach(), torch.tensor([-2.0 * s, 0.0, 0.0, 3.0]))
    torch.testing.assert_close(x.grad, torch.tensor([s, s, s, 1.0]))
