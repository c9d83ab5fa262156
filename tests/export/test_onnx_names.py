"""ONNX export: Caffe names on initializers and nodes, sizes that survive a symbolic batch
axis, and layers refused by name (small nets written here: no ../shared needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

import caffe2torch as c2t
from caffe2torch.errors import ExportError
from caffe2torch.export import export_onnx
from caffe2torch.export.onnx import run_onnx

NET = """
name: "named"
layer { name: "in" type: "Input" top: "data" input_param { shape { dim: 2 dim: 3 dim: 6 dim: 6 } } }
layer { name: "conv/1" type: "Convolution" bottom: "data" top: "conv/1"
        convolution_param { num_output: 6 kernel_size: 3 pad: 1 } }
layer { name: "cut" type: "Slice" bottom: "conv/1" top: "a" top: "b"
        slice_param { slice_point: 2 } }
layer { name: "bn_b" type: "BatchNorm" bottom: "b" top: "b" }
layer { name: "bn_all" type: "BatchNorm" bottom: "a" top: "a2" }
layer { name: "join" type: "Concat" bottom: "a2" bottom: "b" top: "c" }
layer { name: "ip" type: "InnerProduct" bottom: "c" top: "ip"
        inner_product_param { num_output: 4 } }
"""

SHARED = """
name: "pair"
layer { name: "in" type: "Input" top: "a" top: "b"
        input_param { shape { dim: 2 dim: 5 } shape { dim: 2 dim: 5 } } }
layer { name: "fa" type: "InnerProduct" bottom: "a" top: "fa" param { name: "w" }
        param { name: "bias" } inner_product_param { num_output: 3 } }
layer { name: "fb" type: "InnerProduct" bottom: "b" top: "fb" param { name: "w" }
        param { name: "bias" } inner_product_param { num_output: 3 } }
layer { name: "prelu" type: "PReLU" bottom: "fb" top: "fb" }
"""


def _net(tmp_path: Path, text: str, name: str) -> c2t.CaffeNet:
    path = tmp_path / f"{name}.prototxt"
    path.write_text(text)
    return c2t.load_net(path)


def test_initializers_are_named_by_layer_and_blob(tmp_path: Path) -> None:
    # fresh BatchNorm blobs are all zeros: the exporter merges equal initializers, and
    # each must come back as its own Caffe blob
    net = _net(tmp_path, NET, "named")
    export_onnx(net, tmp_path / "m.onnx")
    graph = onnx.load(tmp_path / "m.onnx").graph
    names = {t.name for t in graph.initializer}
    expected = {"conv/1.weight", "conv/1.bias", "ip.weight", "ip.bias"}
    expected |= {f"{bn}.{b}" for bn in ("bn_b", "bn_all")
                 for b in ("mean", "variance", "scale_factor")}
    assert expected <= names, sorted(names)
    assert not [n for n in names if n.startswith("net.")]  # no module paths left
    identity_inputs = [n.input[0] for n in graph.node if n.op_type == "Identity"]
    assert not set(identity_inputs) & names  # no blob read through another's name
    conv = next(n for n in graph.node if n.op_type == "Conv")
    assert conv.name == "conv/1" and list(conv.input[1:]) == ["conv/1.weight", "conv/1.bias"]


def test_shared_params_are_one_initializer_named_after_the_owner(tmp_path: Path) -> None:
    net = _net(tmp_path, SHARED, "pair")
    report = export_onnx(net, tmp_path / "pair.onnx", outputs=["fa", "fb"], verify=True)
    assert report.worst < 1e-6
    graph = onnx.load(tmp_path / "pair.onnx").graph
    names = sorted(t.name for t in graph.initializer)
    assert names == ["fa.bias", "fa.weight", "prelu.slope"]
    gemms = {n.name: list(n.input[1:]) for n in graph.node if n.op_type == "Gemm"}
    assert set(map(tuple, gemms.values())) == {("fa.weight", "fa.bias")}
    assert "fb" in gemms or any(name.startswith("fb/") for name in gemms)


def test_slice_sizes_survive_a_dynamic_batch(tmp_path: Path) -> None:
    """A Slice feeding a BatchNorm: the channel count of every part is a constant, so the
    export with a symbolic batch works and runs at other batch sizes."""
    net = _net(tmp_path, NET, "named")
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for blobs in net.params.values():
            for b in blobs:
                b.copy_(torch.rand(b.shape, generator=gen) + 0.5)
    report = export_onnx(net, tmp_path / "m.onnx", verify=True)
    assert report.worst <= 1e-6 * report.scale["ip"]  # float32 sums in another order
    x = np.random.default_rng(1).uniform(-1, 1, (5, 3, 6, 6)).astype(np.float32)
    (got,) = run_onnx(tmp_path / "m.onnx", {"data": x})
    with torch.no_grad():
        want = net(data=torch.from_numpy(x))["ip"].numpy()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6 * float(np.abs(want).max()))


def test_shape_only_input_is_left_out(tmp_path: Path) -> None:
    """PriorBox reads its image bottom for the size alone: not an input of the graph."""
    text = """
    layer { name: "in" type: "Input" top: "fmap" top: "image"
            input_param { shape { dim: 1 dim: 2 dim: 3 dim: 3 }
                          shape { dim: 1 dim: 3 dim: 30 dim: 30 } } }
    layer { name: "prior" type: "PriorBox" bottom: "fmap" bottom: "image" top: "prior"
            prior_box_param { min_size: 8 aspect_ratio: 2 } }
    """
    report = export_onnx(_net(tmp_path, text, "prior"), tmp_path / "p.onnx", verify=True)
    assert report.inputs == [] and report.worst == 0.0


# ROIPooling and PSROIPooling export (tests/export/test_onnx_detection.py,
# test_onnx_psroi.py); Filter's output size follows the values of its selector
@pytest.mark.parametrize(("kind", "layer"), [
    ("Filter", 'layer { name: "pool_rois" type: "Filter" bottom: "x" bottom: "rois"'
     ' top: "y" }'),
])
def test_value_dependent_layer_is_refused_by_name(tmp_path: Path, kind: str, layer: str) -> None:
    text = f"""
    layer {{ name: "in" type: "Input" top: "x" top: "rois"
            input_param {{ shape {{ dim: 1 dim: 2 dim: 4 dim: 4 }} shape {{ dim: 1 }} }} }}
    {layer}
    """
    with pytest.raises(ExportError, match=rf"layer 'pool_rois' \({kind}\) cannot be exported"):
        export_onnx(_net(tmp_path, text, "roi"), tmp_path / "r.onnx")
