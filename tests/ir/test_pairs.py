"""Towers of a pairwise loss with different batch sizes: refused when the net is built,
naming both data layers, their sizes and lines, before the loss meets the shapes."""

from __future__ import annotations

from pathlib import Path

import pytest

import caffe2torch as c2t
from caffe2torch.errors import BuildError
from caffe2torch.ir.pairs import feeding_data

DATA = """layer {{ name: "{name}" type: "ImageData" top: "data{s}" top: "sim{s}"
  image_data_param {{ source: "{name}.txt" batch_size: {b} new_height: 4 new_width: 4 }} }}
"""
TOWER = """layer {{ name: "feat{s}" type: "InnerProduct" bottom: "data{s}" top: "feat{s}"
  param {{ name: "w" }} param {{ name: "b" }} inner_product_param {{ num_output: 2 }} }}
layer {{ name: "relu{s}" type: "Sigmoid" bottom: "feat{s}" top: "feat{s}" }}
"""
LOSS = """layer { name: "sil" type: "Silence" bottom: "sim_p" }
layer { name: "loss" type: "ContrastiveLoss" bottom: "feat" bottom: "feat_p" bottom: "sim"
  top: "loss" }
"""


def siamese(tmp_path: Path, b1: int, b2: int) -> Path:
    path = tmp_path / "siamese.prototxt"
    path.write_text('name: "s"\n' + DATA.format(name="left", s="", b=b1)
                    + DATA.format(name="right", s="_p", b=b2)
                    + TOWER.format(s="") + TOWER.format(s="_p") + LOSS)
    return path


def test_different_batch_sizes_are_refused_naming_both_towers(tmp_path: Path) -> None:
    path = siamese(tmp_path, 4, 2)
    with pytest.raises(BuildError) as info:
        c2t.load_net(str(path), phase="TRAIN", input_shapes={"data": (4, 1, 4, 4),
                                                            "data_p": (2, 1, 4, 4)})
    err = info.value
    text = str(err)
    assert err.code == "C2T330"
    assert "'left' (line 3)" in text and "'right' (line 5)" in text
    assert "batch_size 4 and 2" in text and "TRAIN" in text
    assert "The data and label should have the same first dimension" in text
    assert "same batch_size" in (err.hint or "")
    assert err.line == 5  # the batch_size of the tower that differs


def test_equal_batch_sizes_build(tmp_path: Path) -> None:
    path = siamese(tmp_path, 3, 3)
    net = c2t.load_net(str(path), phase="TRAIN", input_shapes={"data": (3, 1, 4, 4),
                                                              "data_p": (3, 1, 4, 4)})
    assert net is not None


def test_feeding_data_follows_in_place_layers(tmp_path: Path) -> None:
    net = c2t.read_net(str(siamese(tmp_path, 1, 1)))
    layers = list(net.layer)
    loss = len(layers) - 1
    assert feeding_data(layers, list(layers[loss].bottom), loss) == [0, 1]
    assert feeding_data(layers, ["feat"], loss) == [0]
