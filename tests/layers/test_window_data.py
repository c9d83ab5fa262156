"""WindowData: (batch, channels, crop, crop) windows; channels come from the window file."""

import pytest

from caffe2torch.errors import BuildError
from caffe2torch.layers import find_layer_spec
from tests.layers.helpers_core import build, top_shapes


@pytest.mark.parametrize("alias", ["WINDOW_DATA", "window_data"])
def test_names(alias):
    assert find_layer_spec(alias).type == "WindowData"


def test_needs_crop_size():
    with pytest.raises(BuildError, match="crop_size"):
        build(
            'name: "w" type: "WindowData" top: "data" top: "label" '
            'window_data_param { source: "windows.txt" batch_size: 128 }'
        )


def test_shapes_need_the_window_file_or_input_shapes():
    text = (
        'name: "w" type: "WindowData" top: "data" top: "label" '
        'window_data_param { source: "windows.txt" batch_size: 128 } '
        "transform_param { crop_size: 227 }"
    )
    with pytest.raises(BuildError, match=r"windows\.txt"):
        top_shapes(build(text), [])
    given = {"data": (128, 3, 227, 227), "label": (128,)}
    assert top_shapes(build(text, options={"input_shapes": given}), []) == list(given.values())
