"""The export, convert and draw verbs and the API's refusals (small nets written here, so
these run without ../shared)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

import caffe2torch as c2t
from caffe2torch.cli.main import main
from caffe2torch.errors import BuildError, ExportError
from caffe2torch.export import deploy_view, export_onnx
from caffe2torch.export.draw import draw_net, layer_names, write_drawing
from caffe2torch.export.onnx import run_onnx
from caffe2torch.ir import NetState

TRAIN_TEST = """
name: "tiny"
layer { name: "data" type: "Input" top: "data" top: "label"
        input_param { shape { dim: 2 dim: 3 dim: 9 dim: 9 } shape { dim: 2 } } }
layer { name: "conv/1" type: "Convolution" bottom: "data" top: "conv/1"
        convolution_param { num_output: 4 kernel_size: 3 pad: 1
                            weight_filler { type: "gaussian" std: 0.3 } } }
layer { name: "bn" type: "BatchNorm" bottom: "conv/1" top: "conv/1" }
layer { name: "relu" type: "ReLU" bottom: "conv/1" top: "conv/1" }
layer { name: "pool" type: "Pooling" bottom: "conv/1" top: "pool"
        pooling_param { pool: AVE kernel_size: 3 stride: 2 pad: 1 } }
layer { name: "norm" type: "LRN" bottom: "pool" top: "norm" lrn_param { local_size: 3 } }
layer { name: "ip" type: "InnerProduct" bottom: "norm" top: "ip"
        inner_product_param { num_output: 5 weight_filler { type: "xavier" } } }
layer { name: "prob" type: "Softmax" bottom: "ip" top: "prob" include { stage: "deploy" } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }
layer { name: "acc" type: "Accuracy" bottom: "ip" bottom: "label" top: "acc"
        include { phase: TEST } }
"""

FILTER = """
name: "filtered"
layer { name: "in" type: "Input" top: "x" top: "keep"
        input_param { shape { dim: 4 dim: 3 } shape { dim: 4 dim: 1 } } }
layer { name: "pick" type: "Filter" bottom: "x" bottom: "keep" top: "y" }
"""


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.prototxt"
    path.write_text(TRAIN_TEST)
    return path


def _randomize(net: c2t.CaffeNet) -> None:
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for blobs in net.params.values():
            for b in blobs:
                b.copy_(torch.rand(b.shape, generator=gen) + 0.5)


def test_export_api_deploy_view(tiny: Path, tmp_path: Path) -> None:
    net = c2t.load_net(tiny)
    _randomize(net)
    report = c2t.export_onnx(net, tmp_path / "m.onnx", verify=True)
    assert report.inputs == ["data"] and report.outputs == ["ip"]
    assert sorted(report.dropped) == ["acc", "loss"]
    assert report.max_diff is not None and report.worst < 1e-5
    model = onnx.load(tmp_path / "m.onnx")
    onnx.checker.check_model(model, full_check=True)
    names = {n.name for n in model.graph.node}
    assert "conv/1" in names and "ip/Gemm" in names
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    x = np.random.default_rng(0).uniform(-1, 1, (5, 3, 9, 9)).astype(np.float32)
    (got,) = run_onnx(tmp_path / "m.onnx", {"data": x})  # another batch size than traced
    with torch.no_grad():
        want = net(data=torch.from_numpy(x), label=torch.zeros(5), blobs=["ip"])["ip"]
    np.testing.assert_allclose(got, want.numpy(), rtol=1e-5, atol=1e-6)


def test_export_keeps_caffe_layer_names(tiny: Path, tmp_path: Path) -> None:
    export_onnx(c2t.load_net(tiny), tmp_path / "m.onnx")
    names = [n.name for n in onnx.load(tmp_path / "m.onnx").graph.node]
    for layer in ("conv/1", "relu", "pool", "prob") if False else ("conv/1", "relu", "pool"):
        assert layer in names, names


def test_export_fixed_batch_and_outputs(tiny: Path, tmp_path: Path) -> None:
    net = c2t.load_net(tiny, stages=["deploy"])
    report = export_onnx(net, tmp_path / "m.onnx", batch=1, outputs=["pool", "prob"])
    assert report.outputs == ["pool", "prob"]
    dims = onnx.load(tmp_path / "m.onnx").graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_value for d in dims] == [1, 3, 9, 9]


def test_export_keep_losses(tiny: Path, tmp_path: Path) -> None:
    report = export_onnx(
        c2t.load_net(tiny), tmp_path / "m.onnx", keep_losses=True, outputs=["acc"], verify=True
    )
    assert report.inputs == ["data", "label"] and report.outputs == ["acc"]
    assert report.worst == 0.0


def test_export_refuses_unknown_output(tiny: Path, tmp_path: Path) -> None:
    with pytest.raises(BuildError, match="'ipp' is not a blob"):
        export_onnx(c2t.load_net(tiny), tmp_path / "m.onnx", outputs=["ipp"])


def test_layer_onnx_cannot_express_is_named(tmp_path: Path) -> None:
    path = tmp_path / "f.prototxt"
    path.write_text(FILTER)
    with pytest.raises(ExportError, match=r"layer 'pick' \(Filter\) cannot be exported"):
        export_onnx(c2t.load_net(path), tmp_path / "f.onnx")
    assert not (tmp_path / "f.onnx").exists()


def test_deploy_view_siamese_branch(tmp_path: Path) -> None:
    text = """
    layer { name: "in" type: "Input" top: "pair" top: "sim"
            input_param { shape { dim: 2 dim: 2 dim: 5 } shape { dim: 2 } } }
    layer { name: "cut" type: "Slice" bottom: "pair" top: "a" top: "b"
            slice_param { axis: 1 } }
    layer { name: "fa" type: "InnerProduct" bottom: "a" top: "fa"
            param { name: "w" } param { name: "bias" }
            inner_product_param { num_output: 3 weight_filler { type: "xavier" } } }
    layer { name: "fb" type: "InnerProduct" bottom: "b" top: "fb"
            param { name: "w" } param { name: "bias" }
            inner_product_param { num_output: 3 weight_filler { type: "xavier" } } }
    layer { name: "loss" type: "ContrastiveLoss" bottom: "fa" bottom: "fb" bottom: "sim"
            top: "loss" }
    """
    (tmp_path / "pair.prototxt").write_text(text)
    net = c2t.load_net(tmp_path / "pair.prototxt")
    view = deploy_view(net, branch=["a"])
    assert view.inputs == ["a"] and view.outputs == ["fa"]
    assert view.net.layer_names == ["input", "fa"]
    torch.testing.assert_close(view.net.params["fa"][0], net.params["fb"][0])


def test_cli_export_verify(tiny: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "cli.onnx"
    assert main(["export", str(tiny), "-o", str(out), "--verify", "--opset", "18"]) == 0
    text = capsys.readouterr().out
    assert "verify ok" in text
    assert "verify ip (batch 1): max abs" in text and "verify ip (batch 3): max abs" in text
    assert onnx.load(out).opset_import[0].version == 18


def test_cli_export_usage_errors(tiny: Path, tmp_path: Path, capsys) -> None:
    assert main(["export", str(tiny), "-o", str(tmp_path / "x.onnx"), "--batch", "zero"]) == 2
    assert "--batch" in capsys.readouterr().err
    assert main(["export", str(tiny), "-o", str(tmp_path / "x.onnx"), "--output", "nope"]) == 1
    assert "output 'nope' is not a blob" in capsys.readouterr().err


def test_cli_convert_runs(tiny: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "tiny_net.py"
    assert main(["convert", str(tiny), "-o", str(out), "--stage", "deploy"]) == 0
    assert (tmp_path / "tiny_net.pt").exists()
    namespace: dict = {"__file__": str(out), "__name__": "tiny_net"}
    exec(compile(out.read_text(), str(out), "exec"), namespace)
    model = namespace["load_model"]()
    net = c2t.load_net(tiny, stages=["deploy"])
    net.copy_from({k: [t.numpy() for t in v] for k, v in
                   _state_as_caffe(torch.load(tmp_path / "tiny_net.pt"), net).items()})
    x = torch.rand(3, 3, 9, 9)
    with torch.no_grad():
        torch.testing.assert_close(model(x), net(data=x, label=torch.zeros(3))["prob"])


def _state_as_caffe(state: dict, net: c2t.CaffeNet) -> dict:
    """The generated module's weights back under Caffe layer names (BatchNorm's are
    stored normalised: factor 1)."""
    out = {}
    for layer, blobs in net.params.items():
        key = layer.replace("/", "_")
        if layer == "bn":
            out[layer] = [state["bn_mean"], state["bn_var"], torch.ones(1)]
        else:
            names = ["weight", "bias"]
            out[layer] = [state[f"{key}_{names[i]}"] for i in range(len(blobs))]
    return out


def test_draw_dot_follows_phase_and_stage(tiny: Path) -> None:
    net_param = c2t.read_net(tiny)
    test = draw_net(net_param, NetState.of("TEST"))
    assert layer_names(test) == ["data", "conv/1", "bn", "relu", "pool", "norm", "ip", "loss",
                                 "acc"]
    deploy = draw_net(net_param, NetState.of("TEST", stages=["deploy"]))
    assert "prob" in layer_names(deploy)
    train = draw_net(net_param, NetState.of("TRAIN"), rankdir="TB")
    assert "acc" not in layer_names(train) and "rankdir=TB" in train.dot
    assert "num_output: 4" in test.dot and "2x4x9x9" in test.dot and "pool: AVE" in test.dot


def test_draw_without_graphviz_writes_dot(tiny: Path, tmp_path: Path, monkeypatch) -> None:
    import caffe2torch.export.draw as draw

    monkeypatch.setattr(draw.shutil, "which", lambda name: None)
    drawing = draw_net(c2t.read_net(tiny))
    with pytest.raises(ExportError, match="'dot' program is not installed") as info:
        write_drawing(drawing, str(tmp_path / "net.png"))
    assert "apt-get install graphviz" in (info.value.hint or "")
    assert (tmp_path / "net.dot").read_text() == drawing.dot
    # SVG needs no Graphviz: the built-in layout draws it
    assert write_drawing(drawing, str(tmp_path / "net.svg")) == [str(tmp_path / "net.svg")]
    assert (tmp_path / "net.svg").read_text().startswith("<svg ")


def test_cli_draw(tiny: Path, tmp_path: Path, capsys) -> None:
    assert main(["draw", str(tiny), "-o", str(tmp_path / "n.dot"), "--phase", "TRAIN"]) == 0
    assert "digraph" in (tmp_path / "n.dot").read_text()
    assert main(["draw", str(tiny), "-o", str(tmp_path / "n.jpg")]) == 2
    import shutil

    if shutil.which("dot"):
        assert main(["draw", str(tiny), "-o", str(tmp_path / "n.svg")]) == 0
        assert (tmp_path / "n.svg").read_text().lstrip().startswith("<?xml")
