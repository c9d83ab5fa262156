"""Eltwise PROD / SUM (coeff) / MAX with Caffe's gradients."""

import pytest
import torch

from caffe2torch.errors import BuildError
from caffe2torch.layers import find_layer_spec
from tests.layers.helpers_core import build, golden_params, run_golden


def eltwise(param: str, n: int = 2, shape=(4,)):
    bottoms = " ".join(f'bottom: "b{i}"' for i in range(n))
    return build(
        f'name: "e" type: "Eltwise" {bottoms} top: "y" eltwise_param {{ {param} }}', [shape] * n
    )


@golden_params("Eltwise")
def test_golden(case_dir):
    run_golden(case_dir)


def test_v1_name():
    assert find_layer_spec("ELTWISE").type == "Eltwise"


def test_max_ties_follow_caffe():
    # bottoms 0 and 1: a > b keeps a, a tie goes to b; later bottoms win only if strictly greater
    m = eltwise("operation: MAX", n=3)
    a = torch.tensor([1.0, 2.0, 0.0, 5.0], requires_grad=True)
    b = torch.tensor([1.0, 1.0, 3.0, 5.0], requires_grad=True)
    c = torch.tensor([0.0, 2.0, 3.0, 6.0], requires_grad=True)
    y = m(a, b, c)
    assert y.tolist() == [1.0, 2.0, 3.0, 6.0]
    y.backward(torch.ones(4))
    assert a.grad.tolist() == [0.0, 1.0, 0.0, 0.0]
    assert b.grad.tolist() == [1.0, 0.0, 1.0, 0.0]
    assert c.grad.tolist() == [0.0, 0.0, 0.0, 1.0]


def test_sum_with_coeffs():
    m = eltwise("operation: SUM coeff: 1 coeff: -0.5")
    a, b = torch.randn(4, requires_grad=True), torch.randn(4, requires_grad=True)
    y = m(a, b)
    torch.testing.assert_close(y, a - 0.5 * b)
    y.backward(torch.ones(4))
    assert b.grad.tolist() == [-0.5] * 4


def test_prod_unstable_gradient_is_top_over_bottom():
    m = eltwise("operation: PROD stable_prod_grad: false", n=3)
    xs = [torch.tensor([2.0, 0.0, -1.0, 3.0], requires_grad=True) for _ in range(3)]
    y = m(*xs)
    y.backward(torch.ones(4))
    # Caffe divides the top by the bottom: 0 / 0 is nan where a bottom is zero
    assert torch.isnan(xs[0].grad[1])
    torch.testing.assert_close(xs[0].grad[[0, 2, 3]], torch.tensor([4.0, 1.0, 9.0]))


def test_prod_stable_gradient_is_product_of_others():
    m = eltwise("operation: PROD", n=3)
    xs = [
        torch.tensor([2.0, 0.0]).requires_grad_(),
        torch.tensor([3.0, 5.0]).requires_grad_(),
        torch.tensor([4.0, 7.0]).requires_grad_(),
    ]
    m(*xs).backward(torch.ones(2))
    assert xs[0].grad.tolist() == [12.0, 35.0]


@pytest.mark.parametrize(
    ("param", "shapes", "message"),
    [
        ("operation: SUM coeff: 1", [(4,), (4,)], "one per bottom"),
        ("operation: PROD coeff: 1 coeff: 2", [(4,), (4,)], "only allowed"),
        ("operation: SUM", [(4,), (5,)], "must match"),
    ],
    ids=["coeff_count", "prod_coeff", "shape"],
)
def test_errors(param, shapes, message):
    with pytest.raises(BuildError, match=message):
        build(
            f'name: "e" type: "Eltwise" bottom: "a" bottom: "b" top: "y" '
            f"eltwise_param {{ {param} }}",
            shapes,
        )
