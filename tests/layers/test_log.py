"""Log: y = log_base(shift + scale * x), base -1 meaning e."""

import pytest
import torch

from caffe2torch.errors import BuildError
from tests.layers.helpers_core import build, golden_params, run_golden


@golden_params("Log")
def test_golden(case_dir):
    run_golden(case_dir)


def test_base10_scale_shift_and_gradient():
    m = build(
        'name: "l" type: "Log" bottom: "x" top: "y" log_param { base: 10 scale: 2 shift: 1 }',
        [(3,)],
    )
    x = torch.tensor([0.5, 4.5, 49.5], requires_grad=True)
    y = m(x)
    y.backward(torch.ones(3))
    torch.testing.assert_close(y.detach(), torch.tensor([0.30103, 1.0, 2.0]), rtol=1e-5, atol=1e-6)
    inner = 1 + 2 * x.detach()
    torch.testing.assert_close(x.grad, 2 / (inner * torch.log(torch.tensor(10.0))))


def test_zero_base_is_refused():
    with pytest.raises(BuildError, match="strictly positive"):
        build('name: "l" type: "Log" bottom: "x" top: "y" log_param { base: 0 }', [(3,)])
