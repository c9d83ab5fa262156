"""Reshape: 0 copies a bottom dim, -1 is inferred, axis/num_axes pick the replaced range."""

import pytest

from caffe2torch.errors import BuildError
from caffe2torch.layers.bvlc.blob_ops import reshape_target
from tests.layers.helpers_core import build, golden_params, run_golden, top_shapes


@golden_params("Reshape")
def test_golden(case_dir):
    run_golden(case_dir)


@pytest.mark.parametrize(
    ("bottom", "dims", "axis", "num_axes", "expected"),
    [
        ((2, 3, 4), (0, -1), 0, -1, (2, 12)),
        ((2, 3, 4), (6, 4), 0, -1, (6, 4)),
        ((2, 8), (2, 2, 2), 1, -1, (2, 2, 2, 2)),
        ((2, 3, 4), (3, 1), 1, 1, (2, 3, 1, 4)),
        ((2, 3), (1,), -1, 0, (2, 3, 1)),  # insert a trailing axis
        ((2, 3), (1,), 0, 0, (1, 2, 3)),  # insert a leading axis
        ((2, 3, 4), (-1,), -3, 2, (2, 12)),  # -1 is after the last axis
        ((2, 3, 4, 5), (0, 0, -1), 0, -1, (2, 3, 20)),
    ],
    ids=[
        "zero_minus1",
        "explicit",
        "axis1",
        "axis1_num_axes1",
        "append_axis",
        "prepend_axis",
        "neg_axis",
        "copy_two",
    ],
)
def test_target(bottom, dims, axis, num_axes, expected):
    assert reshape_target(bottom, dims, axis, num_axes) == expected


def test_follows_runtime_batch():
    m = build(
        'name: "r" type: "Reshape" bottom: "x" top: "y" reshape_param { shape { dim: 0 dim: -1 } }',
        [(2, 3, 4)],
    )
    assert top_shapes(m, [(7, 3, 4)]) == [(7, 12)]


@pytest.mark.parametrize(
    ("shape", "message"),
    [
        ("shape { dim: -1 dim: -1 }", "more than one -1"),
        ("shape { dim: 5 dim: -1 }", "not divisible"),
        ("shape { dim: 5 dim: 5 }", "elements"),
        ("shape { dim: 0 dim: 0 dim: 0 dim: 0 }", "no axis"),
        ("shape { dim: 24 } num_axes: 4", "beyond"),
    ],
    ids=["two_minus1", "indivisible", "count", "copy_missing_axis", "num_axes"],
)
def test_errors(shape, message):
    with pytest.raises(BuildError, match=message):
        build(
            f'name: "r" type: "Reshape" bottom: "x" top: "y" reshape_param {{ {shape} }}',
            [(2, 3, 4)],
        )
