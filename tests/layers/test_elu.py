"""ELU: x for x > 0, alpha * (exp(x) - 1) otherwise; gradient alpha + y for x <= 0."""

import torch

from tests.layers.helpers_core import build, golden_params, run_golden


@golden_params("ELU")
def test_golden(case_dir):
    run_golden(case_dir)


def test_gradient_is_alpha_plus_y_below_zero():
    m = build('name: "e" type: "ELU" bottom: "x" top: "y" elu_param { alpha: 0.5 }', [(4,)])
    x = torch.tensor([-2.0, -0.5, 0.0, 1.5], requires_grad=True)
    y = m(x)
    y.backward(torch.ones(4))
    yd = y.detach()
    torch.testing.assert_close(
        yd,
        torch.tensor(
            [
                0.5 * (torch.exp(torch.tensor(-2.0)) - 1),
                0.5 * (torch.exp(torch.tensor(-0.5)) - 1),
                0.0,
                1.5,
            ]
        ),
    )
    expected = torch.where(x.detach() > 0, torch.ones(4), 0.5 + yd)
    torch.testing.assert_close(x.grad, expected)
