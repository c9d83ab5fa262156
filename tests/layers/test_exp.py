"""Exp: y = base ^ (shift + scale * x), base -1 meaning e."""

import pytest
import torch

from caffe2torch.errors import BuildError
from caffe2torch.layers import find_layer_spec
from tests.layers.helpers_core import build, golden_params, run_golden


@golden_params("Exp")
def test_golden(case_dir):
    run_golden(case_dir)


def test_v1_name():
    assert find_layer_spec("EXP").type == "Exp"


def test_base_scale_shift_and_gradient():
    m = build(
        'name: "e" type: "Exp" bottom: "x" top: "y" exp_param { base: 2 scale: 0.5 shift: 1 }',
        [(3,)],
    )
    x = torch.tensor([-2.0, 0.0, 3.0], dtype=torch.float32, requires_grad=True)
    y = m(x)
    y.backward(torch.ones(3))
    expected = 2.0 ** (1 + 0.5 * x.detach())
    torch.testing.assert_close(y.detach(), expected)
    torch.testing.assert_close(x.grad, expected * 0.5 * torch.log(torch.tensor(2.0)))


def test_non_positive_base_is_refused():
    with pytest.raises(BuildError, match="strictly positive"):
        build('name: "e" type: "Exp" bottom: "x" top: "y" exp_param { base: -2 }', [(3,)])
