"""Fields no known schema has never stop a read: they are kept (text, line:col); reading,
upgrade, info, draw and lint go on; only building a layer that needs one stops."""

from __future__ import annotations

from pathlib import Path

import pytest

import caffe2torch as c2t
from caffe2torch.cli.main import main
from caffe2torch.errors import BuildError, ParseError
from caffe2torch.io.extra import take_out_unknown
from caffe2torch.io.text import read_net_text, read_net_with_positions
from caffe2torch.proto import caffe_pb2

SEGNET = """name: "segnet_like"
input: "data"
input_shape { dim: 1 dim: 3 dim: 8 dim: 8 }
layer {
  name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
  convolution_param { num_output: 4 kernel_size: 3 pad: 1 }
  quantize_param { bits: 8 }
}
layer {
  name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1"
  relu_param { negative_slope: 0 fancy_mode: SOFT }
}
"""


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_kept_fields_carry_value_text_and_place() -> None:
    text = 'layer { name: "b" type: "BN"\n  bn_param { bn_mode: INFERENCE\n' \
           '    scale_filler { type: "constant" value: 1 } } }\n'
    blanked, kept = take_out_unknown(text, caffe_pb2.NetParameter.DESCRIPTOR)
    assert len(blanked) == len(text) and blanked.count("\n") == text.count("\n")
    assert [(e.dotted, e.value, e.line, e.col, e.owner) for e in kept] == [
        ("bn_param.bn_mode", "INFERENCE", 2, 14, "BNParameter"),
        ("bn_param.scale_filler", {"type": "constant", "value": 1}, 3, 5, "BNParameter"),
    ]
    assert kept[1].text == 'scale_filler { type: "constant" value: 1 }'


@pytest.mark.parametrize("verb", ["info", "upgrade", "lint", "draw"])
def test_verbs_go_on(tmp_path: Path, verb: str, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(tmp_path / "n.prototxt", SEGNET)
    args = [verb, str(path)] + (["-o", str(tmp_path / "n.dot")] if verb == "draw" else [])
    # lint has findings; info lists every layer, then reports that relu1 cannot be built
    # (it needs fancy_mode's meaning): exit 1 by the CLI's contract, after the table
    assert main(args) == (1 if verb in ("lint", "info") else 0)
    out = capsys.readouterr()
    if verb == "lint":
        assert out.out.count("C2T605") == 2  # quantize_param, fancy_mode
    if verb == "info":
        assert "relu1" in out.out and "conv1" in out.out
        assert "fancy_mode" in out.err


def test_build_goes_on_past_a_block_the_layer_does_not_read(tmp_path: Path) -> None:
    # quantize_param on a Convolution: not the layer's own block (Caffe ignores such blocks)
    path = _write(tmp_path / "n.prototxt", SEGNET.replace(" fancy_mode: SOFT", ""))
    net = c2t.load_net(path)
    assert tuple(net.params["conv1"][0].shape) == (4, 3, 3, 3)


def test_build_stops_at_a_field_the_layer_needs(tmp_path: Path) -> None:
    path = _write(tmp_path / "n.prototxt", SEGNET)
    with pytest.raises(BuildError) as info:
        c2t.load_net(path)
    e = info.value
    assert str(e) == (
        f"{path}:11:34: layer 'relu1' (ReLU): the field `fancy_mode: SOFT` is not in "
        "caffe2torch's schema, and building this layer needs its meaning\n"
        "  help: read the net with the fork's own caffe.proto (--proto PATH, proto=PATH) and "
        'build ReLU with a plug-in that reads ctx.extra_field("relu_param.fancy_mode"), or '
        "delete the field if the net works without it")


def test_a_typo_is_named_with_did_you_mean_when_the_layer_is_built(tmp_path: Path) -> None:
    path = _write(tmp_path / "n.prototxt",
                  SEGNET.replace("kernel_size", "kernel_sze").replace(" fancy_mode: SOFT", ""))
    with pytest.raises(BuildError) as info:
        c2t.load_net(path)
    assert (info.value.line, info.value.col) == (6, 37)
    assert (info.value.hint or "").startswith('did you mean "kernel_size"? Else ')


def test_a_known_fork_is_named(tmp_path: Path) -> None:
    path = _write(tmp_path / "n.prototxt", SEGNET.replace(
        "relu_param { negative_slope: 0 fancy_mode: SOFT }", "").replace(
        'layer {\n  name: "relu1"', 'layer {\n  name: "s" type: "Scale" bottom: "conv1" top: '
        '"conv1" scale_param { min_value: 0.5 }\n}\nlayer {\n  name: "relu1"'))
    with pytest.raises(BuildError, match=r"\(it comes from happynear/caffe-windows"):
        c2t.load_net(path)


def test_unknown_v1_enum_type_is_an_unknown_layer_type(tmp_path: Path) -> None:
    path = _write(tmp_path / "v1.prototxt", 'name: "v1"\ninput: "data"\n'
                  "input_dim: 1\ninput_dim: 3\ninput_dim: 8\ninput_dim: 8\n"
                  'layers {\n  name: "loc"\n  type: LOCAL_MADE_UP\n  bottom: "data"\n'
                  '  top: "loc"\n}\n')
    net, source = read_net_with_positions(path)
    assert [ly.type for ly in net.layer] == ["Input", "LOCAL_MADE_UP"]
    assert source.extras[0].kind == "enum"
    with pytest.raises(BuildError) as info:
        c2t.load_net(path)
    assert info.value.message == "layer 'loc': unknown layer type \"LOCAL_MADE_UP\""
    assert 'caffe2torch.register_layer("LOCAL_MADE_UP")' in (info.value.hint or "")


@pytest.mark.parametrize(
    ("text", "line"),
    [
        pytest.param('layer { name: "a" type: "ReLU" blobs_lr: 1 }', 1, id="v1-field-in-v2"),
        pytest.param("base_lr: 0.1\n", 1, id="solver-as-net"),
        pytest.param('layer { name: "a" type: "ReLU" include { phase: TST } }', 1,
                     id="phase-typo"),
        pytest.param('layer { name: "a"\nlayer { name: "b" } }', 2, id="missing-brace"),
    ],
)
def test_caffe_mistakes_are_still_explained(text: str, line: int) -> None:
    with pytest.raises(ParseError) as info:
        read_net_text(text, "n.prototxt")
    assert info.value.line == line


def test_kept_block_lists_each_value_as_written_with_its_place() -> None:
    from caffe2torch.io.extra import ExtraValue
    from caffe2torch.io.text import read_net_text_with_positions

    text = ('layer { name: "s" type: "MyScale"\n'
            '  my_scale_param { factor: 2.5 bias: [1, -2] name: "a" "b"\n'
            '    sub { x: t } }\n'
            '  my_scale_param { bias: 3 } }\n')
    _, source = read_net_text_with_positions(text)
    (kept,) = source.extras_of(0)  # written twice: one field, as repeated fields are kept
    assert kept.dotted == "my_scale_param"
    assert kept.values == (
        ExtraValue(("factor",), "2.5", "num", 2, 28, (2, 20)),
        ExtraValue(("bias",), "1", "num", 2, 39, (2, 32)),
        ExtraValue(("bias",), "-2", "num", 2, 42, (2, 32)),
        ExtraValue(("name",), '"a" "b"', "str", 2, 52, (2, 46)),
        ExtraValue(("sub",), "{", "block", 3, 9, (3, 5)),
        ExtraValue(("sub", "x"), "t", "ident", 3, 14, (3, 11)),
        ExtraValue(("bias",), "3", "num", 4, 26, (4, 20)),
    )


def test_several_unread_fields_are_counted_in_the_plural(tmp_path: Path) -> None:
    # Cysu/caffe's Data layer (dgd_person_reid): three fields of the fork at once
    path = _write(tmp_path / "n.prototxt", SEGNET.replace(
        "relu_param { negative_slope: 0 fancy_mode: SOFT }",
        "relu_param { negative_slope: 0 fancy_mode: SOFT leak_mode: 1 clip_mode: 2 }"))
    with pytest.raises(BuildError, match=r"`fancy_mode: SOFT` and 2 more are not in "
                       r"caffe2torch's schema"):
        c2t.load_net(path)


def test_lint_says_which_kept_fields_caffe2torch_reads(tmp_path: Path) -> None:
    """DeepLab v1's `hole` is kept aside, and the Convolution builder reads it as the
    dilation: lint names the fork and says so, instead of asking for the fork's schema.
    A kept field nobody reads keeps that request."""
    text = """name: "n"
input: "data"
input_shape { dim: 1 dim: 3 dim: 16 dim: 16 }
layer { name: "c" type: "Convolution" bottom: "data" top: "c"
  convolution_param { num_output: 2 kernel_size: 3 pad: 2 hole: 2 engine_flavor: FAST } }
"""
    path = _write(tmp_path / "n.prototxt", text)
    found = {d.message.split('"')[1]: d for d in c2t.lint(path) if d.code == "C2T605"}
    assert "DeepLab" in found["hole"].message
    assert "dilation" in (found["hole"].help or "")
    assert "--proto" in (found["engine_flavor"].help or "")
    # and the builder does read it: a dilated 3x3 with pad 2 keeps the size
    path.write_text(text.replace(" engine_flavor: FAST", ""))
    assert c2t.load_net(path).blob_shapes["c"] == (1, 2, 16, 16)
