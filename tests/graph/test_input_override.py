"""input_shapes / --input-shape replace a data layer of any kind by an input; ImageData
without a resize takes the first listed image's size; a missing shape names the tops."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

import caffe2torch as c2t
from caffe2torch.cli.main import main
from caffe2torch.errors import BuildError

PYDATA = """name: "pyd"
layer { name: "data" type: "Python" top: "data" top: "label"
  python_param { module: "mydata_that_does_not_exist" layer: "MyData" } }
layer { name: "seg" type: "SomeForkData" top: "img"
  some_fork_data_param { source: "list.txt" batch_size: 2 } }
layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip"
  inner_product_param { num_output: 3 } }
layer { name: "conv" type: "Convolution" bottom: "img" top: "conv"
  convolution_param { num_output: 2 kernel_size: 3 } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }
"""
SHAPES = {"data": [2, 4], "label": [2], "img": [2, 3, 10, 10]}


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_python_and_fork_data_layers_become_inputs(tmp_path: Path) -> None:
    net = c2t.load_net(_write(tmp_path / "n.prototxt", PYDATA), input_shapes=SHAPES)
    assert net.inputs == ["data", "label", "img"]
    out = net(data=np.zeros((2, 4), np.float32), label=np.zeros(2, np.float32),
              img=np.zeros((2, 3, 10, 10), np.float32), blobs=["conv"])
    assert tuple(out["conv"].shape) == (2, 2, 8, 8)
    assert float(out["loss"]) == pytest.approx(np.log(3), rel=1e-5)


def test_without_shapes_the_data_layers_are_refused(tmp_path: Path) -> None:
    with pytest.raises(BuildError, match="Python layers are refused"):
        c2t.load_net(_write(tmp_path / "n.prototxt", PYDATA))


@pytest.mark.parametrize("verb", ["info", "convert", "export", "test"])
def test_cli_verbs_take_the_override(tmp_path: Path, verb: str,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(tmp_path / "n.prototxt", PYDATA)
    flags = [f for top, dims in SHAPES.items()
             for f in ("--input-shape", f"{top}={','.join(map(str, dims))}")]
    if verb == "test":
        args = ["test", "--model", str(path), "--iterations", "1", "-q", *flags]
    else:
        args = [verb, str(path), *flags]
        if verb == "convert":
            args += ["-o", str(tmp_path / "n.py")]
        if verb == "export":
            args += ["-o", str(tmp_path / "n.onnx")]
    assert main(args) == 0, capsys.readouterr().err
    if verb == "info":
        assert "2x2x8x8" in capsys.readouterr().out


def _images(tmp_path: Path) -> Path:
    cv2.imwrite(str(tmp_path / "a.png"), np.zeros((20, 30, 3), np.uint8))
    cv2.imwrite(str(tmp_path / "b.png"), np.zeros((40, 10, 3), np.uint8))
    return _write(tmp_path / "list.txt", f"{tmp_path}/a.png 0\n{tmp_path}/b.png 1\n")


IMAGEDATA = """layer { name: "d" type: "ImageData" top: "data" top: "label"
  image_data_param { source: "SOURCE" batch_size: 4 } }
"""


def test_image_data_takes_the_first_listed_image_size(tmp_path: Path) -> None:
    source = _images(tmp_path)
    net = c2t.load_net(_write(tmp_path / "n.prototxt",
                              IMAGEDATA.replace("SOURCE", str(source))))
    shapes = {r.name: s for r, s in net._version_shapes.items()}
    assert shapes["data"] == (4, 3, 20, 30) and shapes["label"] == (4,)


def test_missing_shape_names_the_tops(tmp_path: Path) -> None:
    path = _write(tmp_path / "n.prototxt", IMAGEDATA.replace("SOURCE", str(tmp_path / "no.txt")))
    with pytest.raises(BuildError) as info:
        c2t.load_net(path)
    assert "top(s) still without a shape: data, label" in info.value.message
    assert "--input-shape data=N,C,H,W, --input-shape label=N,C,H,W" in (info.value.hint or "")
    net = c2t.load_net(path, input_shapes={"data": [1, 3, 5, 5], "label": [1]})
    assert {r.name: s for r, s in net._version_shapes.items()}["data"] == (1, 3, 5, 5)


def test_a_data_layer_with_tops_its_builder_refuses_is_replaced(tmp_path: Path) -> None:
    # DeepLab v1's MemoryData has a third top (data_dim); ours takes two
    path = _write(tmp_path / "n.prototxt", 'layer { name: "data" type: "MemoryData" '
                  'top: "data" top: "label" top: "data_dim" memory_data_param { batch_size: 1 '
                  "channels: 3 height: 5 width: 5 } }\n")
    net = c2t.load_net(path, input_shapes={"data": [1, 3, 5, 5], "label": [1, 1, 5, 5],
                                           "data_dim": [1, 1, 1, 2]})
    assert net.inputs == ["data", "label", "data_dim"]
