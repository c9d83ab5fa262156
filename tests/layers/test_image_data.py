"""ImageData: shapes from batch_size, is_color, new_height/new_width or crop_size."""

import pytest

from caffe2torch.errors import BuildError
from caffe2torch.layers import find_layer_spec
from tests.layers.helpers_core import build, top_shapes


def image_data(param: str, transform: str = ""):
    return build(
        f'name: "d" type: "ImageData" top: "data" top: "label" '
        f'image_data_param {{ source: "list.txt" batch_size: 5 {param} }} {transform}'
    )


@pytest.mark.parametrize("alias", ["IMAGE_DATA", "images"])
def test_names(alias):
    assert find_layer_spec(alias).type == "ImageData"


@pytest.mark.parametrize(
    ("param", "transform", "expected"),
    [
        ("new_height: 32 new_width: 24", "", (5, 3, 32, 24)),
        (
            "new_height: 30 new_width: 30 is_color: false",
            "transform_param { crop_size: 24 }",
            (5, 1, 24, 24),
        ),
        ("", "transform_param { crop_size: 10 }", (5, 3, 10, 10)),
    ],
    ids=["resize", "gray_crop", "crop_only"],
)
def test_shapes(param, transform, expected):
    assert top_shapes(image_data(param, transform), []) == [expected, (5,)]


def test_native_size_needs_the_images():
    with pytest.raises(BuildError, match=r"list\.txt"):
        top_shapes(image_data(""), [])


def test_half_resize_is_refused():
    with pytest.raises(BuildError, match="together"):
        image_data("new_height: 32")
