"""Power: y = (shift + scale * x) ^ power; constant when power or scale is 0."""

import torch

from caffe2torch.layers import find_layer_spec
from tests.layers.helpers_core import build, golden_params, run_golden


@golden_params("Power")
def test_golden(case_dir):
    run_golden(case_dir)


def test_v1_name():
    assert find_layer_spec("POWER").type == "Power"


def test_power_zero_is_one_with_zero_gradient():
    m = build('name: "p" type: "Power" bottom: "x" top: "y" power_param { power: 0 }', [(3,)])
    x = torch.tensor([-1.0, 0.0, float("inf")], requires_grad=True)
    y = m(x)
    y.backward(torch.ones(3))
    assert y.tolist() == [1.0, 1.0, 1.0]
    assert x.grad.tolist() == [0.0, 0.0, 0.0]


def test_scale_zero_is_shift_to_the_power():
    m = build(
        'name: "p" type: "Power" bottom: "x" top: "y" power_param { power: 3 scale: 0 shift: 2 }',
        [(2,)],
    )
    assert m(torch.tensor([5.0, -7.0])).tolist() == [8.0, 8.0]


def test_general_case_and_gradient():
    m = build(
        'name: "p" type: "Power" bottom: "x" top: "y" '
        "power_param { power: 3 scale: -0.5 shift: 1 }",
        [(4,)],
    )
    x = torch.tensor([-1.0, 0.0, 1.0, 2.5], requires_grad=True)
    y = m(x)
    y.backward(torch.ones(4))
    base = 1 - 0.5 * x.detach()
    torch.testing.assert_close(y.detach(), base**3)
    torch.testing.assert_close(x.grad, 3 * -0.5 * base**2)
