"""Damaged .binaryproto / .solverstate files (the caffemodel cases are in
tests/test_binary_io.py) and weights that do not fit the net: a typed error that names the
file and what is wrong."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import caffe2torch as c2t
from caffe2torch.errors import CaffeError, ParseError, WeightsError
from caffe2torch.io import (
    read_binaryproto,
    read_solverstate,
    read_solverstate_arrays,
    write_binaryproto,
    write_caffemodel_arrays,
    write_solverstate,
)
from caffe2torch.proto import caffe_pb2

NET = """name: "small"
layer { name: "data" type: "Input" top: "data"
        input_param { shape { dim: 2 dim: 1 dim: 6 dim: 6 } } }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
        convolution_param { num_output: 3 kernel_size: 3 } }
"""


@pytest.fixture
def mean_file(tmp_path: Path) -> Path:
    path = tmp_path / "mean.binaryproto"
    write_binaryproto(path, np.arange(3 * 4 * 5, dtype=np.float32).reshape(1, 3, 4, 5))
    return path


@pytest.fixture
def state_file(tmp_path: Path) -> Path:
    path = tmp_path / "m_iter_10.solverstate"
    state = caffe_pb2.SolverState(iter=10, learned_net="m_iter_10.caffemodel", current_step=1)
    write_solverstate(path, state, [np.ones((3, 1, 3, 3), np.float32), np.zeros(3, np.float32)])
    return path


@pytest.mark.parametrize("fraction", [0.01, 0.2, 0.5, 0.97])
def test_truncated_binaryproto_and_solverstate(mean_file: Path, state_file: Path,
                                               fraction: float) -> None:
    for path, reads in ((mean_file, (read_binaryproto,)),
                        (state_file, (read_solverstate, read_solverstate_arrays))):
        data = path.read_bytes()
        path.write_bytes(data[: max(1, int(len(data) * fraction))])
        for read in reads:
            with pytest.raises((ParseError, WeightsError)) as info:
                read(path)
            assert info.value.path == str(path)
            # cut in the payload: "not a valid ...: unexpected end"; cut before the
            # shape: the values no longer fit the shape
            assert "not a valid" in info.value.message or "needs" in info.value.message


def test_empty_files(tmp_path: Path) -> None:
    for read, name in ((read_binaryproto, "m.binaryproto"), (read_solverstate, "s.solverstate"),
                       (read_solverstate_arrays, "s.solverstate"),
                       (c2t.io.read_caffemodel, "w.caffemodel")):
        path = tmp_path / name
        path.write_bytes(b"")
        with pytest.raises(ParseError, match="the file is empty") as info:
            read(path)
        assert info.value.path == str(path)


def test_bit_flips_in_binaryproto_and_solverstate(mean_file: Path, state_file: Path) -> None:
    rng = np.random.default_rng(7)
    for path, read in ((mean_file, read_binaryproto), (state_file, read_solverstate_arrays)):
        data = path.read_bytes()
        typed = 0
        header = min(len(data), 40)  # flips in the float payload just change values
        for pos in rng.integers(0, header, 150):
            flipped = bytearray(data)
            flipped[pos] ^= 1 << int(rng.integers(0, 8))
            path.write_bytes(bytes(flipped))
            try:
                read(path)
            except CaffeError as e:
                assert e.path == str(path) and e.message
                typed += 1
        assert typed > 0


def test_missing_file_and_text_given_as_binary(tmp_path: Path) -> None:
    with pytest.raises(ParseError, match="cannot read the file") as info:
        read_binaryproto(tmp_path / "nope.binaryproto")
    assert info.value.path == str(tmp_path / "nope.binaryproto")
    text = tmp_path / "mean.binaryproto"
    text.write_text('shape { dim: 1 }\ndata: 1\n')
    with pytest.raises(ParseError) as info:
        read_binaryproto(text)
    assert "text" in (info.value.hint or "") or "not a valid" in info.value.message


def test_caffemodel_shape_mismatch_names_file_layer_blob_and_shapes(tmp_path: Path) -> None:
    prototxt = tmp_path / "small.prototxt"
    prototxt.write_text(NET)
    model = tmp_path / "other.caffemodel"
    write_caffemodel_arrays(model, c2t.read_net(prototxt),
                            {"conv1": [np.ones((4, 1, 3, 3), np.float32),
                                       np.zeros(4, np.float32)]})
    with pytest.raises(WeightsError) as info:
        c2t.load_net(prototxt, weights=model)
    err = info.value
    assert err.path == str(model)
    assert "layer 'conv1'" in err.message and "param 0" in err.message
    assert "4 1 3 3" in err.message and "3 1 3 3" in err.message
    assert "rename the layer" in (err.hint or "")
