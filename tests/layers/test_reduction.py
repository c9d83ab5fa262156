"""Reduction SUM / ASUM / SUMSQ / MEAN over all axes from axis, times coeff."""

import numpy as np
import pytest
import torch

from tests.layers.helpers_core import build, golden_params, run_golden


@golden_params("Reduction")
def test_golden(case_dir):
    run_golden(case_dir)


@pytest.mark.parametrize(
    ("op", "ref", "grad"),
    [
        ("SUM", lambda x: x.sum(-1), lambda x: np.ones_like(x)),
        ("ASUM", lambda x: np.abs(x).sum(-1), np.sign),
        ("SUMSQ", lambda x: (x * x).sum(-1), lambda x: 2 * x),
        ("MEAN", lambda x: x.mean(-1), lambda x: np.full_like(x, 1 / 12)),
    ],
)
def test_ops_from_axis1_with_coeff(op, ref, grad):
    m = build(
        f'name: "r" type: "Reduction" bottom: "x" top: "y" '
        f"reduction_param {{ operation: {op} axis: 1 coeff: 3 }}",
        [(2, 3, 4)],
    )
    x = torch.randn(2, 3, 4)
    x[0, 0, 0] = 0.0
    x.requires_grad_(True)
    y = m(x)
    assert tuple(y.shape) == (2,)
    flat = x.detach().numpy().reshape(2, 12)
    np.testing.assert_allclose(y.detach().numpy(), 3 * ref(flat), rtol=1e-5, atol=1e-6)
    y.backward(torch.tensor([1.0, 2.0]))
    expected = 3 * grad(flat) * np.array([[1.0], [2.0]])
    np.testing.assert_allclose(x.grad.numpy().reshape(2, 12), expected, rtol=1e-5, atol=1e-6)


def test_axis0_gives_a_0_axis_top():
    m = build('name: "r" type: "Reduction" bottom: "x" top: "y"', [(2, 3)])
    assert m(torch.ones(2, 3)).shape == ()
