"""Input: tops fed from outside, shapes from input_param."""

import pytest

from caffe2torch.errors import BuildError
from caffe2torch.layers import find_layer_spec
from tests.layers.helpers_core import build, golden_params, run_golden, top_shapes


@golden_params("Input")
def test_golden(case_dir):
    run_golden(case_dir)


def test_is_a_data_layer():
    assert find_layer_spec("Input").data


def test_one_shape_for_every_top():
    m = build('name: "i" type: "Input" top: "a" top: "b" input_param { shape { dim: 2 dim: 3 } }')
    assert top_shapes(m, []) == [(2, 3), (2, 3)]


def test_shape_count_must_match_tops():
    with pytest.raises(BuildError, match="one per top"):
        build(
            'name: "i" type: "Input" top: "a" top: "b" top: "c" '
            "input_param { shape { dim: 1 } shape { dim: 2 } }"
        )


def test_no_shape_needs_input_shape():
    m = build('name: "i" type: "Input" top: "a"')
    with pytest.raises(BuildError, match="input-shape"):
        top_shapes(m, [])
    m = build('name: "i" type: "Input" top: "a"', options={"input_shapes": {"a": [1, 3, 8, 8]}})
    assert top_shapes(m, []) == [(1, 3, 8, 8)]
