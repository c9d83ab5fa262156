"""--fold-bn (same outputs, fewer nodes), --simplify and --half (float16, checked at a
float16 tolerance), on a small net and on the golden ResNet-50, MobileNet and GoogLeNet."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

import caffe2torch as c2t
from caffe2torch.cli.main import main
from caffe2torch.export import export_onnx
from caffe2torch.export.onnx import run_onnx
from tests.export._golden_export import NET_CASES, loaded, saved_blobs
from tests.export.test_onnx_golden import _exportable_outputs
from tests.support.golden import assert_matches

NET = """
name: "bn"
layer { name: "in" type: "Input" top: "data"
        input_param { shape { dim: 2 dim: 3 dim: 12 dim: 12 } } }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
        convolution_param { num_output: 8 kernel_size: 3 bias_term: false
                            weight_filler { type: "gaussian" std: 0.2 } } }
layer { name: "bn1" type: "BatchNorm" bottom: "conv1" top: "conv1" }
layer { name: "scale1" type: "Scale" bottom: "conv1" top: "conv1" scale_param { bias_term: true } }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
layer { name: "conv2" type: "Convolution" bottom: "conv1" top: "conv2"
        convolution_param { num_output: 4 kernel_size: 3 group: 2
                            weight_filler { type: "gaussian" std: 0.2 }
                            bias_filler { type: "constant" value: 0.3 } } }
layer { name: "bn2" type: "BatchNorm" bottom: "conv2" top: "bn2" }
layer { name: "ip" type: "InnerProduct" bottom: "bn2" top: "ip"
        inner_product_param { num_output: 6 weight_filler { type: "xavier" } } }
layer { name: "bn3" type: "BatchNorm" bottom: "ip" top: "ip" }
layer { name: "scale3" type: "Scale" bottom: "ip" top: "ip" scale_param { bias_term: false } }
"""


def _net(tmp_path: Path) -> c2t.CaffeNet:
    path = tmp_path / "bn.prototxt"
    path.write_text(NET)
    net = c2t.load_net(path)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name in ("bn1", "bn2", "bn3"):
            mean, var, factor = net.params[name]
            mean.copy_(torch.randn(mean.shape, generator=gen) * 0.2)
            var.copy_(torch.rand(var.shape, generator=gen) + 0.5)
            factor.fill_(2.0)  # Caffe's scale factor: the blobs hold twice the statistics
        for name in ("scale1", "scale3"):
            for blob in net.params[name]:
                blob.copy_(torch.rand(blob.shape, generator=gen) + 0.5)
    return net


def test_fold_bn_same_outputs_fewer_nodes(tmp_path: Path) -> None:
    net = _net(tmp_path)
    plain = export_onnx(net, tmp_path / "plain.onnx", verify=True)
    folded = export_onnx(net, tmp_path / "folded.onnx", fold_bn=True, verify=True)
    assert sorted(folded.folded) == ["bn1", "bn2", "bn3", "scale1", "scale3"]
    assert folded.nodes < plain.nodes
    assert folded.verify is not None and folded.verify.ok, folded.verify.failures()
    ops = {n.op_type for n in onnx.load(tmp_path / "folded.onnx").graph.node}
    assert "BatchNormalization" not in ops
    x = np.random.default_rng(0).uniform(-1, 1, (4, 3, 12, 12)).astype(np.float32)
    (a,) = run_onnx(tmp_path / "plain.onnx", {"data": x})
    (b,) = run_onnx(tmp_path / "folded.onnx", {"data": x})
    np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-5)


def test_fold_bn_keeps_a_blob_asked_for(tmp_path: Path) -> None:
    """conv2's own top is an output: its BatchNorm cannot be folded into it."""
    report = export_onnx(_net(tmp_path), tmp_path / "m.onnx", fold_bn=True,
                         outputs=["conv2", "ip"], verify=True)
    assert "bn2" not in report.folded and "bn1" in report.folded
    assert report.verify is not None and report.verify.ok


def test_simplify(tmp_path: Path) -> None:
    net = _net(tmp_path)
    plain = export_onnx(net, tmp_path / "plain.onnx")
    simple = export_onnx(net, tmp_path / "simple.onnx", simplify=True, verify=True)
    assert simple.nodes <= plain.nodes
    assert any("simplified with" in n for n in simple.notes)
    assert simple.verify is not None and simple.verify.ok
    names = {n.name for n in onnx.load(tmp_path / "simple.onnx").graph.node}
    assert "conv1" in names or any(n.startswith("conv1") for n in names)


def test_half(tmp_path: Path) -> None:
    report = export_onnx(_net(tmp_path), tmp_path / "half.onnx", half=True, verify=True)
    model = onnx.load(tmp_path / "half.onnx")
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT16
    weights = [t for t in model.graph.initializer if t.name == "conv1.weight"]
    assert weights and weights[0].data_type == onnx.TensorProto.FLOAT16
    assert report.verify is not None and report.verify.rtol == pytest.approx(2e-2)
    assert report.verify.ok, report.verify.failures()


def test_cli_fold_bn_simplify_half(tmp_path: Path, capsys) -> None:
    path = tmp_path / "bn.prototxt"
    path.write_text(NET)
    out = str(tmp_path / "m.onnx")
    assert main(["export", str(path), "-o", out, "--fold-bn", "--simplify", "--half"]) == 0
    assert "simplified with" in capsys.readouterr().err


FOLD_NETS = ["resnet50", "mobilenet_v1", "mobilenet_v2", "googlenet"]


@pytest.mark.slow
@pytest.mark.skipif(not NET_CASES, reason="../shared/golden/nets is absent")
@pytest.mark.parametrize("name", FOLD_NETS, ids=FOLD_NETS)
def test_fold_bn_golden_nets(golden_dir: Path, tmp_path: Path, name: str) -> None:
    case, net = loaded(golden_dir / "nets" / name)
    outputs = _exportable_outputs(net, saved_blobs(case))
    final = [o for o in outputs if o in net.outputs] or outputs[-1:]
    plain = export_onnx(net, tmp_path / "plain.onnx", outputs=final)
    folded = export_onnx(net, tmp_path / "folded.onnx", outputs=final, fold_bn=True)
    has_bn = any(ly.type == "BatchNorm" for ly in net.ir.layers)
    print(f"\n{name}: {plain.nodes} nodes -> {folded.nodes} with --fold-bn "
          f"({len(folded.folded)} layers folded)")
    assert (folded.nodes < plain.nodes) if has_bn else (folded.nodes == plain.nodes)
    feeds = {n: np.asarray(case.arrays[f"input/{n}"], np.float32) for n in folded.inputs}
    for blob, value in zip(final, run_onnx(tmp_path / "folded.onnx", feeds)):
        assert_matches(case, f"blob/{blob}", value)
