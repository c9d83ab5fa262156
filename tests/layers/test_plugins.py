"""The plug-in API: explicit registration, plug-in parameter fields read from prototxt
(kept by the net reader with the layer's other unknown fields, typed by layer_fields),
entry-point discovery, and a net using a plug-in type."""

from __future__ import annotations

import types
from collections.abc import Iterator

import pytest
import torch
from torch import nn

import caffe2torch as c2t
from caffe2torch.errors import ParseError
from caffe2torch.io.text import read_net_text_with_positions
from caffe2torch.layers import plugins, registry
from caffe2torch.layers.registry import BuildContext, build_layer


class Scale(nn.Module):
    def __init__(self, factor: float, bias: list[float]) -> None:
        super().__init__()
        self.factor = factor
        self.bias = sum(bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.factor + self.bias


@pytest.fixture
def clean_registry() -> Iterator[None]:
    """Undo what a test registers."""
    registry._load_builtin_layers()
    saved = (dict(registry._REGISTRY), dict(registry._ALIASES), dict(plugins._PARAMS),
             dict(plugins._BY_TYPE), plugins._entry_points_loaded)
    yield
    registry._REGISTRY.clear()
    registry._REGISTRY.update(saved[0])
    registry._ALIASES.clear()
    registry._ALIASES.update(saved[1])
    plugins._PARAMS.clear()
    plugins._PARAMS.update(saved[2])
    plugins._BY_TYPE.clear()
    plugins._BY_TYPE.update(saved[3])
    plugins._entry_points_loaded = saved[4]


def register_my_scale() -> None:
    @c2t.register_layer("MyScale", fields={"factor": 1.0, "bias": [0.0], "mode": "x"})
    def build(ctx: BuildContext) -> nn.Module:
        f = c2t.layer_fields(ctx)
        return Scale(f.factor, f.bias)


def one_layer(text: str, shapes=((2, 3),)) -> nn.Module:
    net, source = read_net_text_with_positions(text)
    return build_layer(BuildContext(layer=net.layer[0], bottom_shapes=list(shapes), num_tops=1,
                                    extra=source.extras_of(0)))


def test_register_and_read_fields(clean_registry: None) -> None:
    register_my_scale()
    m = one_layer("""layer { name: "s" type: "MyScale" bottom: "x" top: "y"
                       my_scale_param { factor: 2 bias: 1 bias: 0.5 } }""")
    x = torch.randn(2, 3)
    torch.testing.assert_close(m(x), x * 2 + 1.5)
    # defaults when the block is absent
    m = one_layer('layer { name: "s2" type: "MyScale" bottom: "x" top: "y" }')
    torch.testing.assert_close(m(x), x)


def test_fields_are_typed_and_positions_kept(clean_registry: None, tmp_path) -> None:
    register_my_scale()
    text = ('input: "x" input_shape { dim: 2 dim: 3 }\nlayer {\n'
            '  name: "s" type: "MyScale" bottom: "x" top: "y"\n'
            '  my_scale_param { factor: "big" }\n}\n')
    path = tmp_path / "net.prototxt"
    path.write_text(text)
    with pytest.raises(ParseError, match="expected a number") as err:
        c2t.load_net(path)
    assert (err.value.path, err.value.line, err.value.col) == (str(path), 4, 28)
    path.write_text(text.replace('factor: "big"', "factr: 2"))
    with pytest.raises(ParseError, match='no field named "factr"') as err:
        c2t.load_net(path)
    assert 'did you mean "factor"' in (err.value.hint or "")
    assert (err.value.line, err.value.col) == (4, 20)
    path.write_text(text.replace('factor: "big"', "factor: 2 bias: [1, 2] mode: fast"))
    assert c2t.load_net(path).module("s").bias == 3.0
    path.write_text(text.replace('factor: "big"', "factor { x: 2 }"))
    with pytest.raises(ParseError, match="nested blocks"):
        c2t.load_net(path)
    # reading needs no plug-in: an error after the kept block points at its own place
    with pytest.raises(ParseError) as err:
        read_net_text_with_positions(text.replace('"big" }\n}', '3 }\n  top: 1\n}'))
    assert err.value.line == 5


def test_two_nets_same_type_different_fields(clean_registry: None) -> None:
    """The values travel with each net: two nets whose plug-in layers are identical but for
    their fields, read in turn in one process, each get their own (no cache between them)."""
    register_my_scale()
    text = 'layer {{ name: "s" type: "MyScale" bottom: "x" top: "y" {} }}'
    first = read_net_text_with_positions(text.format("my_scale_param { factor: 2 }"))
    second = read_net_text_with_positions(text.format("my_scale_param { factor: 7 }"))
    plain = read_net_text_with_positions(text.format(""))
    factors = [
        build_layer(BuildContext(layer=net.layer[0], bottom_shapes=[(1,)], num_tops=1,
                                 extra=source.extras_of(0))).factor
        for net, source in (first, second, plain, first)
    ]
    assert factors == [2.0, 7.0, 1.0, 2.0]
    assert first[0].layer[0] == plain[0].layer[0]  # the messages alone cannot tell them apart


def test_same_layer_in_two_phases_gets_its_own_fields(clean_registry: None) -> None:
    register_my_scale()
    net, source = read_net_text_with_positions("""
        layer { name: "s" type: "MyScale" bottom: "x" top: "y" include { phase: TRAIN }
                my_scale_param { factor: 3 } }
        layer { name: "s" type: "MyScale" bottom: "x" top: "y" include { phase: TEST }
                my_scale_param { factor: 5 } }""")
    factors = [
        build_layer(BuildContext(layer=lay, bottom_shapes=[(1,)], num_tops=1,
                                 extra=source.extras_of(i))).factor
        for i, lay in enumerate(net.layer)
    ]
    assert factors == [3.0, 5.0]


def test_declaration_errors(clean_registry: None) -> None:
    with pytest.raises(ValueError, match="LayerParameter field already"):
        c2t.register_layer("Bad", fields={"x": 1}, param_name="convolution_param")
    with pytest.raises(ValueError, match="defaults must be"):
        c2t.register_layer("Bad", fields={"x": {"nested": 1}})
    with pytest.raises(ValueError, match="already registered"):
        c2t.register_layer("ReLU")(lambda ctx: nn.Identity())


def test_unknown_type_hint_points_at_registration() -> None:
    from caffe2torch.errors import BuildError

    with pytest.raises(BuildError, match="unknown layer type"):
        registry.get_layer_spec("TotallyUnknownThing")


class _EntryPoint:
    def __init__(self, name: str, target: object) -> None:
        self.name, self.value, self._target = name, f"tests:{name}", target

    def load(self) -> object:
        if isinstance(self._target, Exception):
            raise self._target
        return self._target


def test_entry_point_discovery(clean_registry: None, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def plugin() -> None:
        calls.append("plugin")
        register_my_scale()

    module_plugin = types.ModuleType("already_registering_module")
    points = [_EntryPoint("scale", plugin), _EntryPoint("mod", module_plugin),
              _EntryPoint("broken", ImportError("no such module"))]

    def fake_entry_points(group: str) -> list[_EntryPoint]:
        assert group == "caffe2torch.layers"
        return points

    monkeypatch.setattr(plugins.metadata, "entry_points", fake_entry_points)
    monkeypatch.setattr(plugins, "_entry_points_loaded", False)
    monkeypatch.setattr(registry, "_loaded", False)  # as in a fresh process
    with pytest.warns(RuntimeWarning, match="'broken'"):
        assert registry.find_layer_spec("MyScale") is not None  # first lookup loads them
    assert calls == ["plugin"]
    assert registry.find_layer_spec("MyScale") is not None
    assert calls == ["plugin"]  # loaded once
    # reading a net loads none (the reader keeps the block whatever declares it); building
    # one, in a fresh process, does through its registry lookup
    plugins._entry_points_loaded = False
    registry._loaded = False
    registry._REGISTRY.pop("MyScale")
    plugins._forget("MyScale")
    net, source = read_net_text_with_positions(
        'layer { name: "s" type: "MyScale" bottom: "x" top: "y" my_scale_param { factor: 4 } }')
    assert calls == ["plugin"]
    with pytest.warns(RuntimeWarning):
        module = build_layer(BuildContext(layer=net.layer[0], bottom_shapes=[(1,)], num_tops=1,
                                          extra=source.extras_of(0)))
    assert calls == ["plugin", "plugin"]
    assert module.factor == 4.0


def test_net_with_plugin_type_builds(clean_registry: None, tmp_path) -> None:
    if not hasattr(c2t, "load_net"):
        pytest.skip("caffe2torch.load_net is not available in this checkout")
    register_my_scale()
    path = tmp_path / "net.prototxt"
    path.write_text("""
        input: "data" input_shape { dim: 2 dim: 3 }
        layer { name: "s" type: "MyScale" bottom: "data" top: "out"
                my_scale_param { factor: 2 bias: 1 } }
    """)
    net = c2t.load_net(str(path), phase="TEST")
    x = torch.randn(2, 3)
    torch.testing.assert_close(net(data=x)["out"], x * 2 + 1)


def test_fields_typed_by_a_fork_schema(clean_registry: None) -> None:
    """A net read with a fork's caffe.proto that defines the block hands typed values."""
    from caffe2torch.io.extra import ExtraField
    from caffe2torch.proto import caffe_pb2

    register_my_scale()
    layer = caffe_pb2.LayerParameter(name="s", type="MyScale", bottom=["x"], top=["y"])

    def kept(value: object) -> list[ExtraField]:
        return [ExtraField(path=("layer", "my_scale_param"), owner="LayerParameter",
                           value=value, text="my_scale_param { ... }", line=3, col=5, block=0,
                           typed=True)]

    ctx = BuildContext(layer=layer, bottom_shapes=[(1,)], num_tops=1,
                       extra=kept({"factor": 2, "bias": [1.0, 0.5]}))
    fields = c2t.layer_fields(ctx)
    assert (fields.factor, fields.bias, fields.mode) == (2.0, [1.0, 0.5], "x")
    bad = BuildContext(layer=layer, bottom_shapes=[(1,)], num_tops=1,
                       extra=kept({"factor": "big"}))
    with pytest.raises(ParseError, match="expected a number") as err:
        c2t.layer_fields(bad)
    assert (err.value.line, err.value.col) == (3, 5)
