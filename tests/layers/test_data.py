"""Data (LMDB/LevelDB): a data layer whose shapes come from its records."""

import pytest
import torch

from caffe2torch.errors import BuildError
from caffe2torch.layers import find_layer_spec
from tests.layers.helpers_core import build, top_shapes

TEXT = (
    'name: "d" type: "Data" top: "data" top: "label" '
    'data_param { source: "train_lmdb" batch_size: 8 } transform_param { crop_size: 4 }'
)


@pytest.mark.parametrize("alias", ["DATA", "data"])
def test_names(alias):
    spec = find_layer_spec(alias)
    assert spec.type == "Data" and spec.data


def test_shape_needs_the_source():
    m = build(TEXT)
    with pytest.raises(BuildError, match="train_lmdb") as info:
        top_shapes(m, [])
    assert "--input-shape" in str(info.value)


def test_given_shapes_and_pass_through():
    m = build(TEXT, options={"input_shapes": {"data": (8, 3, 4, 4), "label": (8,)}})
    assert top_shapes(m, []) == [(8, 3, 4, 4), (8,)]
    x, y = torch.randn(8, 3, 4, 4), torch.arange(8.0)
    a, b = m(x, y)
    assert a is x and b is y


def test_batch_size_must_be_positive():
    with pytest.raises(BuildError, match="batch_size"):
        build('name: "d" type: "Data" top: "data" data_param { source: "x" }')
