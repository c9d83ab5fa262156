"""ir.loose: blobs a file only reads become declared inputs when given a shape."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from google.protobuf import text_format

import caffe2torch as c2t
from caffe2torch.errors import CaffeError
from caffe2torch.io import read_net_with_positions
from caffe2torch.ir.loose import declare_read_blobs, read_before_made
from caffe2torch.proto import caffe_pb2

PIECE = """layer { name: "norm" type: "Normalize" bottom: "feat" top: "normed" }
layer { name: "bn" type: "BatchNorm" bottom: "map" top: "map" }
layer { name: "input" type: "ReLU" bottom: "normed" top: "normed" }
layer { name: "ip" type: "InnerProduct" bottom: "normed" top: "ip"
        inner_product_param { num_output: 3 } }
"""


def _net(text: str) -> caffe_pb2.NetParameter:
    return text_format.Parse(text, caffe_pb2.NetParameter())


def test_read_before_made_in_file_order() -> None:
    # 'map' is made only in place (read first), 'normed' is made before its in-place use
    assert read_before_made(_net(PIECE)) == ["feat", "map"]
    declared = 'input: "feat" input_shape { dim: 1 }\n' + PIECE
    assert read_before_made(_net(declared)) == ["map"]


def test_declare_read_blobs_puts_one_input_layer_first(tmp_path: Path) -> None:
    path = tmp_path / "piece.prototxt"
    path.write_text(PIECE)
    net, source = read_net_with_positions(str(path))
    out, shifted = declare_read_blobs(net, {"map": [2, 1, 2, 2], "feat": [2, 4], "x": [1]},
                                      source)
    first = out.layer[0]
    # "input" is taken by a layer of the file: the next free name
    assert (first.name, first.type, list(first.top)) == ("input_1", "Input", ["feat", "map"])
    assert [list(s.dim) for s in first.input_param.shape] == [[2, 4], [2, 1, 2, 2]]
    assert [ly.name for ly in out.layer[1:]] == [ly.name for ly in net.layer]
    assert len(net.layer) == 4  # the caller's net is left alone
    assert len(shifted) == 5 and shifted.layer(0).start_line == 1
    assert shifted.layer(0).index == -1 and shifted.layer(4).start_line == 4
    same, same_source = declare_read_blobs(net, {"normed": [2, 4]}, source)
    assert same is net and same_source is source


def test_load_net_builds_a_piece_given_its_shapes(tmp_path: Path) -> None:
    path = tmp_path / "piece.prototxt"
    path.write_text(PIECE)
    with pytest.raises(CaffeError, match="unknown bottom blob 'map'"):
        c2t.load_net(path, input_shapes={"feat": (2, 4)})
    net = c2t.load_net(path, input_shapes={"feat": (2, 4), "map": (2, 1, 2, 2)})
    out = net(feat=torch.ones(2, 4), map=torch.zeros(2, 1, 2, 2))
    assert tuple(out["ip"].shape) == (2, 3)
