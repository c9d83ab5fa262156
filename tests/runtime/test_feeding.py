"""runtime.feeding and graph.fed: nets that draw their own batches (Caffe's Net::Forward),
HDF5Output writers, and the lazy feeder load_net attaches."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

import caffe2torch as c2t
from caffe2torch.graph.fed import build_fed_net
from caffe2torch.io import read_net_with_positions
from caffe2torch.ir import NetState
from caffe2torch.runtime.feeding import BatchStream, LazyBatchStream, data_layers, open_feeder

NET = """name: "fed"
layer { name: "data" type: "HDF5Data" top: "data" top: "label"
        hdf5_data_param { source: "list.txt" batch_size: 2 } }
layer { name: "extra" type: "Input" top: "extra" input_param { shape { dim: 2 dim: 3 } } }
layer { name: "sum" type: "Eltwise" bottom: "data" bottom: "extra" top: "sum" }
layer { name: "out" type: "HDF5Output" bottom: "sum" bottom: "label"
        hdf5_output_param { file_name: "written.h5" } }
"""


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    rows = np.arange(18, dtype=np.float32).reshape(6, 3)
    with h5py.File(tmp_path / "rows.h5", "w") as f:
        f["data"] = rows
        f["label"] = np.arange(6, dtype=np.float32)
    (tmp_path / "list.txt").write_text("rows.h5\n")
    (tmp_path / "net.prototxt").write_text(NET)
    monkeypatch.chdir(tmp_path)  # Caffe's paths are relative to the working directory
    return tmp_path


def test_fed_net_draws_batches_in_order_and_writes_hdf5_output(folder: Path) -> None:
    net_param, source = read_net_with_positions("net.prototxt")
    net = build_fed_net(net_param, NetState.of("TEST"), source_map=source)
    assert isinstance(net.batch_stream, BatchStream) and net.feeder is net.batch_stream
    assert net.blob_shapes["data"] == (2, 3)  # from the first batch: HDF5Data tells no shape
    first = net.batch_stream()
    torch.testing.assert_close(first["data"], torch.arange(6.0).reshape(2, 3))
    torch.testing.assert_close(first["extra"], torch.zeros(2, 3))  # an Input: zeros
    net.batch_stream.skip(1)
    assert net.batch_stream.batches == 2
    assert net(net.batch_stream()) == {}  # the third batch (rows 4, 5); a sink: no outputs
    (writer,) = net.hdf5_outputs
    assert writer.rows == 2
    with h5py.File(folder / "written.h5") as f:
        np.testing.assert_array_equal(f["data"][:, :, 0, 0], np.arange(12, 18).reshape(2, 3))
        np.testing.assert_array_equal(f["label"][:, 0, 0, 0], [4, 5])
    net.batch_stream.close()


def test_load_net_opens_the_data_at_the_first_call_only(folder: Path) -> None:
    net = c2t.load_net("net.prototxt", input_shapes={"data": (2, 3), "label": (2,)})
    assert isinstance(net.feeder, LazyBatchStream)
    assert net.feeder.stream is None  # built, nothing read
    assert net.batch_stream is None and net.hdf5_outputs == []
    net()  # Caffe's Net::Forward: the data layer draws its next batch
    assert net.feeder.stream is not None and net.feeder.stream.batches == 1
    net.feeder.close()


def test_a_net_without_data_layers_has_no_feeder(tmp_path: Path) -> None:
    (tmp_path / "deploy.prototxt").write_text(
        'input: "x" input_shape { dim: 1 dim: 2 }\n'
        'layer { name: "r" type: "ReLU" bottom: "x" top: "y" }\n')
    net_param, _ = read_net_with_positions(tmp_path / "deploy.prototxt")
    state = NetState.of("TEST")
    assert data_layers(net_param, state) == []
    assert open_feeder(net_param, state, device=torch.device("cpu")) == (None, None)
    assert c2t.load_net(tmp_path / "deploy.prototxt").feeder is None
    net = build_fed_net(net_param, state)
    assert net.batch_stream is not None and net.batch_stream.feeder is None
    torch.testing.assert_close(net.batch_stream()["x"], torch.zeros(1, 2))
