"""A ``.caffemodel.h5`` as Caffe's Net::ToHDF5 writes it for a net with shared params: only
the owner's blobs are written, a sharer's group is empty (or lacks the shared blob). It
loads as CopyTrainedLayersFromHDF5 loads it: the sharer takes its owner's values; a blob a
layer owns must be there."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

import caffe2torch as c2t
from caffe2torch.errors import WeightsError

NET = """name: "siamese_tiny"
input: "a" input_shape { dim: 2 dim: 3 }
input: "b" input_shape { dim: 2 dim: 3 }
layer { name: "ip1" type: "InnerProduct" bottom: "a" top: "fa"
  param { name: "w" } param { name: "bias" }
  inner_product_param { num_output: 4 } }
layer { name: "ip1_p" type: "InnerProduct" bottom: "b" top: "fb"
  param { name: "w" } param { name: "bias" }
  inner_product_param { num_output: 4 } }
layer { name: "head" type: "InnerProduct" bottom: "fa" top: "ha"
  param { name: "hw" } inner_product_param { num_output: 2 } }
layer { name: "head_p" type: "InnerProduct" bottom: "fb" top: "hb"
  param { name: "hw" } inner_product_param { num_output: 2 } }
"""

RNG = np.random.default_rng(1)
VALUES = {
    "ip1/0": RNG.normal(size=(4, 3)).astype(np.float32),
    "ip1/1": RNG.normal(size=(4,)).astype(np.float32),
    "head/0": RNG.normal(size=(2, 4)).astype(np.float32),
    "head/1": RNG.normal(size=(2,)).astype(np.float32),
    "head_p/1": RNG.normal(size=(2,)).astype(np.float32),  # head_p owns its bias
}


def _write_like_caffe(path: Path, values: dict[str, np.ndarray]) -> None:
    """Net::ToHDF5: a group per layer, a dataset per blob the layer owns."""
    with h5py.File(path, "w") as f:
        data = f.create_group("data")
        for layer in ("ip1", "ip1_p", "head", "head_p"):
            data.create_group(layer)
        for key, value in values.items():
            layer, index = key.split("/")
            data[layer].create_dataset(index, data=value)


@pytest.fixture
def net_path(tmp_path: Path) -> Path:
    path = tmp_path / "net.prototxt"
    path.write_text(NET)
    return path


def test_sharers_take_their_owners_values(tmp_path: Path, net_path: Path) -> None:
    weights = tmp_path / "w.caffemodel.h5"
    _write_like_caffe(weights, VALUES)
    with h5py.File(weights) as f:
        assert len(f["data/ip1_p"]) == 0 and list(f["data/head_p"]) == ["1"]
    net = c2t.load_net(net_path, weights=weights)
    p = {k: [t.detach().numpy() for t in v] for k, v in net.params.items()}
    np.testing.assert_array_equal(p["ip1"][0], VALUES["ip1/0"])
    np.testing.assert_array_equal(p["ip1_p"][0], VALUES["ip1/0"])
    np.testing.assert_array_equal(p["ip1_p"][1], VALUES["ip1/1"])
    np.testing.assert_array_equal(p["head_p"][0], VALUES["head/0"])
    np.testing.assert_array_equal(p["head_p"][1], VALUES["head_p/1"])
    report = net.copy_from(weights)
    assert report.copied == ["head", "head_p", "ip1"] and report.ignored == []


def test_a_missing_owned_blob_is_an_error(tmp_path: Path, net_path: Path) -> None:
    weights = tmp_path / "w.caffemodel.h5"
    _write_like_caffe(weights, {k: v for k, v in VALUES.items() if k != "head_p/1"})
    with pytest.raises(WeightsError, match=r"layer 'head_p'.* no blob 1, which the net's "
                                           r"layer owns") as info:
        c2t.load_net(net_path, weights=weights)
    assert info.value.path == str(weights)


def test_a_file_without_the_data_group_is_refused(tmp_path: Path, net_path: Path) -> None:
    weights = tmp_path / "w.caffemodel.h5"
    with h5py.File(weights, "w") as f:
        f.create_group("diff")
    with pytest.raises(WeightsError, match="no 'data' group"):
        c2t.load_net(net_path, weights=weights)
