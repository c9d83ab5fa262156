"""`convert` writes a plug-in layer type through the emitter the plug-in registers for its
module class (caffe2torch.layers.emit), as it does the built-in types."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch
from torch import nn

import caffe2torch as c2t
from caffe2torch.errors import ExportError
from caffe2torch.export.standalone import convert_net
from caffe2torch.layers import emit, plugins, registry
from caffe2torch.layers.emit import Emit, emitter, num


class Affine(nn.Module):
    def __init__(self, factor: float, offset: float) -> None:
        super().__init__()
        self.factor, self.offset = factor, offset

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.factor + self.offset


@pytest.fixture
def plugin(monkeypatch: pytest.MonkeyPatch) -> None:
    """Register the plug-in type on copies of the registries (undone after the test)."""
    registry._load_builtin_layers()
    for owner, name in ((registry, "_REGISTRY"), (registry, "_ALIASES"),
                        (plugins, "_PARAMS"), (plugins, "_BY_TYPE"), (emit, "_EMITTERS")):
        monkeypatch.setattr(owner, name, dict(getattr(owner, name)))

    @c2t.register_layer("Affine", fields={"factor": 2.0, "offset": 0.5})
    def build(ctx: registry.BuildContext) -> nn.Module:
        f = c2t.layer_fields(ctx)
        return Affine(f.factor, f.offset)


NET = """name: "p"
input: "data" input_shape { dim: 2 dim: 3 }
layer { name: "a" type: "Affine" bottom: "data" top: "y" }
"""


def _run_generated(path: Path, x: torch.Tensor) -> torch.Tensor:
    spec = importlib.util.spec_from_file_location("generated_affine", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    with torch.no_grad():
        return module.load_model()(x)


def test_plugin_emitter_writes_the_plugin_layer(plugin: None, tmp_path: Path) -> None:
    @emitter(Affine)
    def _emit_affine(e: Emit) -> list[str]:
        m = e.module
        return e.assign(f"{e.bottoms[0]} * {num(m.factor)} + {num(m.offset)}")

    (tmp_path / "net.prototxt").write_text(NET)
    net = c2t.load_net(tmp_path / "net.prototxt")
    convert_net(net, tmp_path / "affine.py", safetensors=False)
    assert "y = data * 2 + 0.5" in (tmp_path / "affine.py").read_text()
    x = torch.randn(2, 3)
    assert torch.equal(_run_generated(tmp_path / "affine.py", x), net(data=x)["y"])


def test_plugin_without_emitter_is_reported(plugin: None, tmp_path: Path) -> None:
    (tmp_path / "net.prototxt").write_text(NET)
    with pytest.raises(ExportError, match="layer 'a' \\(Affine\\): no standalone source"):
        convert_net(str(tmp_path / "net.prototxt"), tmp_path / "affine.py", safetensors=False)


def test_plugin_fields_reach_the_emitter(plugin: None, tmp_path: Path) -> None:
    @emitter(Affine)
    def _emit_affine(e: Emit) -> list[str]:
        m = e.module
        return e.assign(f"{e.bottoms[0]} * {num(m.factor)} + {num(m.offset)}")

    text = NET.replace('top: "y" }', 'top: "y" affine_param { factor: 3 offset: 1 } }')
    (tmp_path / "net.prototxt").write_text(text)
    net = c2t.load_net(tmp_path / "net.prototxt")
    convert_net(net, tmp_path / "affine.py", safetensors=False)
    x = torch.randn(2, 3)
    assert torch.equal(_run_generated(tmp_path / "affine.py", x), net(data=x)["y"])


def test_plugin_fields_reach_the_onnx_file(plugin: None, tmp_path: Path) -> None:
    """export_onnx runs the same deploy view: the plug-in's fields, not its defaults."""
    from caffe2torch.export.onnx import export_onnx, run_onnx

    text = NET.replace('top: "y" }', 'top: "y" affine_param { factor: 3 offset: 1 } }')
    (tmp_path / "net.prototxt").write_text(text)
    net = c2t.load_net(tmp_path / "net.prototxt")
    export_onnx(net, tmp_path / "affine.onnx")
    x = torch.randn(2, 3)
    (got,) = run_onnx(tmp_path / "affine.onnx", {"data": x.numpy()})
    assert torch.allclose(torch.from_numpy(got), x * 3 + 1)
