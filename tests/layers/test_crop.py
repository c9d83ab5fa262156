"""Crop bottom 0 to bottom 1's size on axes from axis, at offsets."""

import pytest
import torch

from caffe2torch.errors import BuildError
from tests.layers.helpers_core import build, golden_params, run_golden


@golden_params("Crop")
def test_golden(case_dir):
    run_golden(case_dir)


def crop(param: str, data=(2, 3, 8, 9), ref=(1, 1, 4, 5)):
    return build(
        f'name: "c" type: "Crop" bottom: "x" bottom: "r" top: "y" crop_param {{ {param} }}',
        [data, ref],
    )


def test_per_axis_offsets_and_gradient():
    m = crop("axis: 2 offset: 1 offset: 3")
    x = torch.randn(2, 3, 8, 9, requires_grad=True)
    y = m(x, torch.empty(1, 1, 4, 5))
    assert torch.equal(y, x.detach()[:, :, 1:5, 3:8])
    y.backward(torch.ones_like(y))
    assert x.grad.sum().item() == y.numel() and x.grad[:, :, 1:5, 3:8].eq(1).all()


def test_one_offset_for_all_axes():
    m = crop("axis: 1 offset: 1", ref=(2, 2, 4, 5))
    x = torch.randn(2, 3, 8, 9)
    assert torch.equal(m(x, torch.empty(2, 2, 4, 5)), x[:, 1:3, 1:5, 1:6])


@pytest.mark.parametrize(
    ("param", "message"),
    [
        ("axis: 2 offset: 5", "out of bounds"),
        ("axis: 1 offset: 0 offset: 0", "offsets for"),
        ("axis: 4", "out of range"),
    ],
    ids=["out_of_bounds", "offset_count", "bad_axis"],
)
def test_errors(param, message):
    with pytest.raises(BuildError, match=message):
        crop(param)
