"""DenseImageData (SegNet): image / label-image pairs; tops (batch, C, h, w) and (batch, 1,
h, w) sized by transform_param.crop_size, crop_height/width, new_height/width, else the
first listed image (dense_image_data_layer.cpp's DataLayerSetUp)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

import caffe2torch as c2t
from caffe2torch.errors import BuildError


def _net(tmp_path: Path, param: str, transform: str = "") -> Path:
    path = tmp_path / "net.prototxt"
    path.write_text('layer { name: "d" type: "DenseImageData" top: "data" top: "label" '
                    f"{transform} dense_image_data_param {{ {param} }} }}\n")
    return path


def _shapes(net) -> dict[str, tuple[int, ...]]:
    return {r.name: s for r, s in net._version_shapes.items()}


@pytest.mark.parametrize(
    ("param", "transform", "want"),
    [
        pytest.param("batch_size: 2 new_height: 8 new_width: 6", "", (8, 6), id="resize"),
        pytest.param("batch_size: 2 new_height: 8 new_width: 6 crop_height: 4 crop_width: 3",
                     "", (4, 3), id="crop-hw"),
        pytest.param("batch_size: 2 crop_height: 4 crop_width: 3",
                     "transform_param { crop_size: 5 }", (5, 5), id="crop-size-first"),
    ],
)
def test_top_shapes(tmp_path: Path, param: str, transform: str, want: tuple[int, int]) -> None:
    net = c2t.load_net(_net(tmp_path, param, transform))
    assert _shapes(net)["data"] == (2, 3, *want) and _shapes(net)["label"] == (2, 1, *want)


def test_size_of_the_first_listed_image(tmp_path: Path) -> None:
    cv2.imwrite(str(tmp_path / "a.png"), np.zeros((12, 7, 3), np.uint8))
    (tmp_path / "list.txt").write_text(f"{tmp_path}/a.png {tmp_path}/a_label.png\n")
    net = c2t.load_net(_net(tmp_path, f'source: "{tmp_path}/list.txt" batch_size: 3 '
                            "is_color: false"))
    assert _shapes(net)["data"] == (3, 1, 12, 7) and _shapes(net)["label"] == (3, 1, 12, 7)


def test_unreachable_list_names_the_tops(tmp_path: Path) -> None:
    with pytest.raises(BuildError, match="still without a shape: data, label"):
        c2t.load_net(_net(tmp_path, 'source: "nowhere.txt" batch_size: 1'))
    net = c2t.load_net(_net(tmp_path, 'source: "nowhere.txt" batch_size: 1'),
                       input_shapes={"data": [1, 3, 4, 4], "label": [1, 1, 4, 4]})
    assert _shapes(net)["data"] == (1, 3, 4, 4)
