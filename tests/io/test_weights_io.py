"""Weights by layer name: copy_from (caffemodel V1/V2, HDF5, NetParameter, dict) with
Caffe's checks, and save_caffemodel that Caffe's reader (protobuf) takes back."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import caffe2torch as c2t
from caffe2torch.errors import WeightsError
from caffe2torch.graph import build_net
from caffe2torch.io import read_net_text
from caffe2torch.proto import caffe_pb2

NET = """
name: "small"
layer { name: "data" type: "Input" top: "data"
        input_param { shape { dim: 2 dim: 1 dim: 6 dim: 6 } } }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
        convolution_param { num_output: 3 kernel_size: 3 } }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
layer { name: "ip1" type: "InnerProduct" bottom: "conv1" top: "ip1"
        inner_product_param { num_output: 5 } }
"""


def small() -> c2t.CaffeNet:
    return build_net(read_net_text(NET))


def randomize(net: c2t.CaffeNet) -> None:
    torch.manual_seed(1)
    with torch.no_grad():
        for blobs in net.params.values():
            for b in blobs:
                b.copy_(torch.randn_like(b))


def test_save_then_load_round_trip(tmp_path):
    net = small()
    randomize(net)
    path = tmp_path / "w.caffemodel"
    net.save_caffemodel(path)
    msg = caffe_pb2.NetParameter()
    msg.ParseFromString(path.read_bytes())
    assert msg.name == "small"
    assert [ly.name for ly in msg.layer] == ["data", "conv1", "relu1", "ip1"]
    conv = msg.layer[1]
    assert conv.type == "Convolution" and list(conv.bottom) == ["data"]
    assert list(conv.top) == ["conv1"] and conv.phase == caffe_pb2.TEST
    assert [list(b.shape.dim) for b in conv.blobs] == [[3, 1, 3, 3], [3]]
    weight = net.params["conv1"][0].detach().numpy().ravel()
    assert np.allclose(np.array(conv.blobs[0].data), weight)
    other = small()
    report = other.copy_from(path)
    assert report.copied == ["conv1", "ip1"] and report.ignored == [] and report.missing == []
    x = torch.randn(2, 1, 6, 6)
    assert torch.equal(other(data=x)["ip1"], net(data=x)["ip1"])
    loaded = c2t.load_net(_write(tmp_path, NET), weights=path)
    assert torch.equal(loaded(data=x)["ip1"], net(data=x)["ip1"])


def _write(tmp_path, text):
    p = tmp_path / "net.prototxt"
    p.write_text(text)
    return p


def test_extra_and_missing_layers_are_listed():
    net = small()
    report = net.copy_from({"ip1": [np.ones((5, 48)), np.zeros(5)], "fc9": [np.ones(3)]})
    assert report.copied == ["ip1"] and report.ignored == ["fc9"] and report.missing == ["conv1"]
    assert float(net.params["ip1"][0].sum()) == 5 * 48


def test_shape_mismatch_names_layer_blob_and_shapes():
    net = small()
    with pytest.raises(WeightsError) as err:
        net.copy_from({"conv1": [np.ones((4, 1, 3, 3)), np.zeros(3)]})
    msg = str(err.value)
    assert "conv1" in msg and "param 0" in msg and "4 1 3 3" in msg and "3 1 3 3" in msg


def test_blob_count_mismatch_is_refused():
    with pytest.raises(WeightsError, match="number of blobs"):
        small().copy_from({"conv1": [np.ones((3, 1, 3, 3))]})


def test_legacy_4d_blobs_fit_by_count_padding():
    net = small()
    msg = caffe_pb2.NetParameter()
    layer = msg.layer.add(name="ip1", type="InnerProduct")
    w = layer.blobs.add(num=1, channels=1, height=5, width=48)
    w.data.extend(np.arange(240, dtype=np.float32) / 240)
    b = layer.blobs.add(num=1, channels=1, height=1, width=5)
    b.data.extend([1, 2, 3, 4, 5])
    net.copy_from(msg)
    assert net.params["ip1"][1].tolist() == [1, 2, 3, 4, 5]
    assert net.params["ip1"][0][1, 0].item() == pytest.approx(48 / 240)
    bad = caffe_pb2.NetParameter()
    bad.CopyFrom(msg)
    bad.layer[0].blobs[1].width = 4
    del bad.layer[0].blobs[1].data[-1]
    with pytest.raises(WeightsError, match="param 1"):
        net.copy_from(bad)


def test_v1_caffemodel_is_upgraded_and_loaded(tmp_path):
    net = small()
    msg = caffe_pb2.NetParameter(name="small")
    v1 = msg.layers.add(name="conv1", type=caffe_pb2.V1LayerParameter.CONVOLUTION)
    v1.bottom.append("data")
    v1.top.append("conv1")
    w = v1.blobs.add(num=3, channels=1, height=3, width=3)
    w.data.extend([0.5] * 27)
    bias = v1.blobs.add(num=1, channels=1, height=1, width=3)
    bias.data.extend([1, 2, 3])
    path = tmp_path / "v1.caffemodel"
    path.write_bytes(msg.SerializeToString())
    report = net.copy_from(path)
    assert report.copied == ["conv1"] and report.missing == ["ip1"]
    assert net.params["conv1"][1].tolist() == [1, 2, 3]


def test_hdf5_weights(tmp_path):
    h5py = pytest.importorskip("h5py")
    path = tmp_path / "w.caffemodel.h5"
    with h5py.File(path, "w") as f:
        g = f.create_group("data").create_group("ip1")
        g["0"] = np.full((5, 48), 2.0, dtype=np.float32)
        g["1"] = np.arange(5, dtype=np.float32)
    net = small()
    assert net.copy_from(path).copied == ["ip1"]
    assert net.params["ip1"][1].tolist() == [0, 1, 2, 3, 4]


def test_shared_params_are_written_under_each_layer(tmp_path):
    text = NET.replace('name: "ip1" type: "InnerProduct" bottom: "conv1" top: "ip1"',
                       'name: "ip1" type: "InnerProduct" bottom: "conv1" top: "ip1" '
                       'param { name: "w" }') + """
    layer { name: "ip1_p" type: "InnerProduct" bottom: "conv1" top: "ip1_p" param { name: "w" }
            inner_product_param { num_output: 5 } }
    """
    net = build_net(read_net_text(text))
    randomize(net)
    path = tmp_path / "shared.caffemodel"
    net.save_caffemodel(path)
    msg = caffe_pb2.NetParameter()
    msg.ParseFromString(path.read_bytes())
    by_name = {ly.name: ly for ly in msg.layer}
    assert list(by_name["ip1"].blobs[0].data) == list(by_name["ip1_p"].blobs[0].data)


def test_real_caffemodel_loads_into_its_net(corpus_dir):
    model = corpus_dir / "kpzhang93__MTCNN_face_detection_alignment/code/codes/MTCNNv1/model"
    if not (model / "det1.caffemodel").exists():
        pytest.skip("MTCNN det1 is not in this corpus")
    net = c2t.load_net(model / "det1.prototxt", weights=model / "det1.caffemodel",
                       input_shapes={"data": (1, 3, 12, 12)})
    assert net.params["conv1"][0].abs().sum() > 0
    out = net(data=torch.zeros(1, 3, 12, 12))
    assert set(out) == set(net.outputs)
