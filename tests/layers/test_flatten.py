"""Flatten axes axis..end_axis into one."""

import pytest

from caffe2torch.errors import BuildError
from caffe2torch.layers import find_layer_spec
from tests.layers.helpers_core import build, golden_params, run_golden, top_shapes


@golden_params("Flatten")
def test_golden(case_dir):
    run_golden(case_dir)


def test_names():
    assert find_layer_spec("FLATTEN").type == find_layer_spec("flatten").type == "Flatten"


@pytest.mark.parametrize(
    ("param", "expected"),
    [
        ("", (2, 60)),
        ("flatten_param { axis: 2 }", (2, 3, 20)),
        ("flatten_param { axis: 0 end_axis: -2 }", (24, 5)),
        ("flatten_param { axis: -3 end_axis: 2 }", (2, 12, 5)),
    ],
    ids=["default", "axis2", "axis0_end_neg2", "neg_axis"],
)
def test_shapes(param, expected):
    m = build(f'name: "f" type: "Flatten" bottom: "x" top: "y" {param}', [(2, 3, 4, 5)])
    assert top_shapes(m, [(2, 3, 4, 5)]) == [expected]


def test_end_before_axis_is_refused():
    with pytest.raises(BuildError, match="before axis"):
        build(
            'name: "f" type: "Flatten" bottom: "x" top: "y" flatten_param { axis: 2 end_axis: 1 }',
            [(2, 3, 4)],
        )
