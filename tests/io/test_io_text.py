"""Text reading: leniency, source positions, error messages, upgrades on small inputs."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from caffe2torch.errors import CaffeError, ParseError, UpgradeError
from caffe2torch.io import (
    net_to_text,
    read_net,
    read_net_text,
    read_net_with_positions,
    read_solver,
    read_solver_text,
    scan,
    upgrade_net,
    upgrade_net_report,
    upgrade_text,
)
from caffe2torch.io.positions import enclosing_fields
from caffe2torch.io.text import decode
from caffe2torch.io.upgrade import V1_TYPES, needs_upgrade
from caffe2torch.proto import caffe_pb2
from tests.conftest import CORPUS, SEEDS, need_shared

V2_NET = """name: "tiny"
layer {
  name: "data"
  type: "Input"
  top: "data"
  input_param { shape { dim: 1 dim: 3 dim: 8 dim: 8 } }
}
layer {
  name: "conv1"
  type: "Convolution"
  bottom: "data"
  top: "conv1"
  param { lr_mult: 1 }
  convolution_param {
    num_output: 4
    kernel_size: 3
  }
}
"""

# --------------------------------------------------------------------------- leniency


def test_crlf_and_cr_newlines_keep_line_numbers(tmp_path: Path) -> None:
    bad = V2_NET.replace("kernel_size: 3", "kernel_sise: 3")
    for newline in ("\r\n", "\r"):
        path = tmp_path / "crlf.prototxt"
        path.write_bytes(bad.replace("\n", newline).encode())
        _, source = read_net_with_positions(path)  # the unknown field is kept aside
        assert [(e.name, e.line, e.col) for e in source.extras] == [("kernel_sise", 16, 5)]
        with pytest.raises(ParseError) as info:
            read_net_text(bad.replace("\n", newline).replace("kernel_sise: 3", "}"))
        assert (info.value.line, info.value.col) == (18, 1)
    assert read_net_text(V2_NET.replace("\n", "\r\n")) == read_net_text(V2_NET)


def test_latin1_comment_bytes(tmp_path: Path) -> None:
    raw = V2_NET.encode().replace(b'name: "tiny"', b'name: "tiny" # r\xe9seau de d\xe9mo')
    raw = raw.replace(b"kernel_size: 3", b"kernel_size: 3 # caf\xc3\xa9 \xff")
    path = tmp_path / "latin1.prototxt"
    path.write_bytes(raw)
    assert read_net(path) == read_net_text(V2_NET)
    # one character per undecodable byte: columns after them stay right
    text = decode(b"# \xe9\xe9\nname: 'x' \xff bogus: 1\n")
    assert text.split("\n")[1] == "name: 'x' \xff bogus: 1"
    with pytest.raises(ParseError) as info:
        read_net_text(text)
    assert (info.value.line, info.value.col) == (2, 11)


def test_bom_is_dropped() -> None:
    assert decode(b"\xef\xbb\xbfname: 'x'\n") == "name: 'x'\n"


def test_layer_colon_brace_and_single_quotes() -> None:
    text = V2_NET.replace("layer {", "layer: {").replace('"', "'")
    assert read_net_text(text) == read_net_text(V2_NET)


def test_repeated_scalar_last_one_wins() -> None:
    # C++ TextFormat (Caffe) lets a later value replace an earlier one
    net = read_net_text(V2_NET.replace("num_output: 4", "num_output: 4 num_output: 7"))
    assert net.layer[1].convolution_param.num_output == 7


def test_missing_file_is_a_parse_error(tmp_path: Path) -> None:
    with pytest.raises(ParseError) as info:
        read_net(tmp_path / "nope.prototxt")
    assert info.value.path == str(tmp_path / "nope.prototxt")


@pytest.mark.parametrize("lines, layer", [
    ("/data/a_1.jpg 0\n/data/a_2.jpg 1\n", "ImageData"),  # a Siamese net's train1.txt
    ("img/cat.png\nimg/dog.png\n", "ImageData"),  # a test list without labels
    ("/data/train_0.h5\n/data/train_1.h5\n", "HDF5Data"),
])
def test_a_data_layers_file_list_given_as_the_net_says_so(tmp_path: Path, lines: str,
                                                           layer: str) -> None:
    path = tmp_path / "train1.txt"
    path.write_text(lines)
    with pytest.raises(ParseError) as info:
        read_net(path)
    assert f"file list of a data layer ({layer}), not prototxt" in info.value.message
    assert "source:" in (info.value.hint or "")


def test_a_solver_of_numbers_only_is_not_taken_for_a_file_list(tmp_path: Path) -> None:
    path = tmp_path / "solver.prototxt"
    path.write_text("base_lr: 0.01\nmax_iter: 100\nmomentum: 0.9\nbogus_field: 1\n")
    with pytest.raises(ParseError) as info:
        read_solver(path)
    assert "file list" not in info.value.message
    assert "bogus_field" in info.value.message


# --------------------------------------------------------------------------- positions


def test_scan_blocks_and_nested_fields() -> None:
    src = scan(V2_NET)
    assert len(src) == 2 and src.kinds() == {"layer"}
    conv = src.layer(1)
    assert (conv.start_line, conv.start_col, conv.end_line) == (8, 1, 18)
    assert conv.name == "conv1" and conv.type_token == '"Convolution"'
    assert conv.field("convolution_param.kernel_size") == (16, 5)
    assert conv.fields["param.lr_mult"] == [(13, 11)]
    assert src.layer(0).field("input_param.shape.dim") == (6, 25)
    assert src.top("name") == (1, 1)


def test_scan_tolerates_broken_files() -> None:
    text = 'layer { name: "a" }\n}\n}\nlayer { name: "b" convolution_param { pad: [1, 2] \n'
    src = scan(text)
    assert [b.name for b in src.blocks] == ["a", "b"]
    assert src.blocks[0].closed and not src.blocks[1].closed
    assert src.blocks[1].end_line == 4
    assert src.blocks[1].fields["convolution_param.pad"] == [(4, 39)]
    assert scan("").blocks == [] and scan('"unterminated\n{{{').blocks == []


def test_scan_v0_names_and_extensions() -> None:
    text = 'layers {\n  layer { name: "conv1" type: "conv" }\n  [caffe.ext] { a: 1 }\n}\n'
    b = scan(text).layer(0)
    assert b.kind == "layers" and b.name == "conv1"
    assert b.field("layer.type") == (2, 25)
    assert b.field("[caffe.ext].a") == (3, 17)


def test_enclosing_fields() -> None:
    assert enclosing_fields(V2_NET, 16, 5) == ["layer", "convolution_param"]
    assert enclosing_fields(V2_NET, 1, 1) == []


def test_positions_of_upgraded_layers() -> None:
    text = (
        'name: "n"\ninput: "data"\ninput_dim: 1\ninput_dim: 3\ninput_dim: 8\ninput_dim: 8\n'
        'layers {\n  name: "relu"\n  type: RELU\n  bottom: "data"\n  top: "data"\n}\n'
    )
    report = upgrade_net_report(_parse_raw(text))
    assert report.origin == [None, 0]
    src = scan(text).remap(report.origin)
    assert src.layer(0).kind == "input" and src.layer(0).start == (2, 1)
    assert src.layer(0).fields["input_param.shape.dim"][0] == (3, 1)
    assert src.layer(1).start == (7, 1) and src.layer(1).name == "relu"


def _parse_raw(text: str) -> caffe_pb2.NetParameter:
    from google.protobuf import text_format

    return text_format.Merge(text, caffe_pb2.NetParameter())


@pytest.mark.shared
def test_read_net_with_positions_v0_padding_folded() -> None:
    path = need_shared(CORPUS / "BVLC__caffe@pr33/examples/imagenet-winner2013_deploy.prototxt")
    net, src = read_net_with_positions(path)
    names = [lp.name for lp in net.layer]
    assert names[0] == "input" and "pad2" not in names
    conv2 = names.index("conv2")
    assert src.layer(conv2).start_line == 68
    assert list(net.layer[conv2].convolution_param.pad) == [2]
    assert net.layer[conv2].bottom == ["norm1"]
    assert src.layer(0).start == (1, 1)


@pytest.mark.shared
def test_scan_inception_resnet_v2() -> None:
    path = CORPUS / "soeaver__caffe-model/cls/inception/deploy_inception-resnet-v2.prototxt"
    need_shared(path)
    src = scan(path.read_text())
    assert len(src.blocks) == 987 and all(b.closed for b in src.blocks)


_EDITS = st.lists(
    st.tuples(st.integers(0, len(V2_NET)), st.integers(0, 3),
              st.sampled_from(["", "{", "}", ":", '"', "'", "#", "\n", "[", "layers {", "x"])),
    min_size=1, max_size=4,
)


@settings(max_examples=150, deadline=None)
@given(_EDITS)
def test_broken_text_gives_typed_errors_only(edits: list[tuple[int, int, str]]) -> None:
    text = V2_NET
    for at, cut, insert in edits:
        text = text[:at] + insert + text[at + cut:]
    src = scan(text)  # never raises
    assert all(b.end_line >= b.start_line for b in src.blocks)
    try:
        read_net_text(text)
    except CaffeError as e:
        assert e.line is None or e.line >= 1


# --------------------------------------------------------------------------- errors


def _error(text: str, cls: type[Exception] = ParseError) -> ParseError:
    with pytest.raises(cls) as info:
        read_net_text(text, "net.prototxt")
    return info.value  # type: ignore[return-value]


def test_v1_field_in_v2_layer_names_the_v2_form() -> None:
    e = _error(V2_NET.replace("param { lr_mult: 1 }", "blobs_lr: 1"))
    assert (e.path, e.line, e.col) == ("net.prototxt", 13, 3)
    assert '"blobs_lr"' in e.message and "LayerParameter" in e.message
    assert "param { lr_mult" in (e.hint or "")
    assert str(e).startswith("net.prototxt:13:3: ")
    e = _error(V2_NET.replace("param { lr_mult: 1 }", 'param: "w"'))
    assert e.line == 13 and 'param { name: "NAME" }' in (e.hint or "")


def test_v1_enum_type_in_v2_layer() -> None:
    e = _error(V2_NET.replace('type: "Convolution"', "type: CONVOLUTION"))
    assert (e.line, e.col) == (10, 9)
    assert 'type: "Convolution"' in (e.hint or "")


def test_v2_type_in_v1_layers_block() -> None:
    e = _error('layers {\n  name: "c"\n  type: "Convolution"\n}\n')
    assert e.line == 3 and "type: CONVOLUTION" in (e.hint or "")


def test_unknown_field_is_kept_not_fatal(tmp_path: Path) -> None:
    # a field no schema knows does not stop the read (it may be a fork's); the build of a
    # layer that needs it says "did you mean" (tests/test_fork_fields.py)
    path = tmp_path / "typo.prototxt"
    path.write_text(V2_NET.replace("kernel_size", "kernel_sze"))
    net, source = read_net_with_positions(path)
    assert net.layer[1].convolution_param.num_output == 4
    (kept,) = source.extras
    assert (kept.line, kept.col, kept.owner, kept.dotted) == (
        16, 5, "ConvolutionParameter", "convolution_param.kernel_sze")


def test_unclosed_and_stray_braces() -> None:
    e = _error(V2_NET[: V2_NET.rindex("}")])
    assert (e.line, e.col) == (8, 1) and "never closed" in e.message
    e = _error(V2_NET.replace("  }\n}\n", "  }\n"))  # conv block never closed
    assert (e.line, e.col) == (8, 1) and "never closed" in e.message
    # a `}` missing before the next layer
    e = _error(V2_NET.replace("} }\n}\nlayer {", "} }\nlayer {"))
    assert (e.line, e.col) == (7, 1)
    assert "inside the `layer` block opened at line 2" in e.message
    assert "missing before line 7" in (e.hint or "")
    # a `}` too many: the layer's fields land at the top level
    e = _error(V2_NET.replace('  name: "conv1"', '}\n  name: "conv1"'))
    assert e.line == 11 and "closed too early" in (e.hint or "")
    e = _error(V2_NET + "}\n")
    assert (e.line, e.col) == (19, 1) and "no block is open" in e.message


def test_bad_numbers_and_enums() -> None:
    e = _error(V2_NET.replace("num_output: 4", "num_output: 2.5"))
    assert e.line == 15 and '"num_output" takes a non-negative 32-bit integer' in e.message
    e = _error(V2_NET.replace("param { lr_mult: 1 }", "include { phase: TST }"))
    assert e.line == 13 and "TEST" in (e.hint or "")


def test_template_placeholders_are_named_whole() -> None:
    """Nets committed as templates (FlowNet 2.0's $TARGET_HEIGHT$, DeepLab's ${NUM_LABELS}):
    the error shows the whole placeholder, not protobuf's one symbol `$`, and says a
    script fills it in."""
    for spelling in ("$TARGET_HEIGHT$", "${NUM_LABELS}"):
        e = _error(V2_NET.replace("num_output: 4", f"num_output: {spelling}"))
        assert e.line == 15 and e.message.endswith(f"integer, not {spelling}"), e.message
        assert "template" in (e.hint or "") and spelling in (e.hint or "")
    # a plain bad word keeps its message and gets no template hint
    e = _error(V2_NET.replace("num_output: 4", "num_output: cls3x"))
    assert e.message.endswith("not cls3x") and "template" not in (e.hint or "")


def test_a_template_variable_is_named(tmp_path: Path) -> None:
    text = V2_NET.replace("num_output: 4", "num_output: ${NUM_LABELS}")
    e = _error(text)
    assert e.line == 15 and e.message.endswith("integer, not ${NUM_LABELS}")
    assert "template" in (e.hint or "")
    path = tmp_path / "train.prototxt"
    path.write_text(text)
    with pytest.raises(ParseError) as info:
        read_net(path)
    assert info.value.message.endswith("integer, not ${NUM_LABELS}")


def test_solver_read_as_net_says_so() -> None:
    e = _error("base_lr: 0.01\nmax_iter: 10\n")
    assert "solver" in (e.hint or "")


@pytest.mark.shared
def test_unknown_fork_field_in_real_file(tmp_path: Path) -> None:
    path = CORPUS / "BVLC__caffe@pr5906/models/yolo/yolo416/yolo_deploy.prototxt"
    need_shared(path)
    copy = tmp_path / "yolo_deploy.prototxt"
    copy.write_text(path.read_text().replace("reorg_param", "reorg_parameters"))
    _, source = read_net_with_positions(copy)
    (kept,) = source.extras
    assert (kept.line, kept.col, kept.name) == (914, 3, "reorg_parameters")


# --------------------------------------------------------------------------- mixed files


@pytest.mark.shared
def test_mixed_seed_is_refused_with_both_ranges(tmp_path: Path) -> None:
    path = need_shared(SEEDS / "answer_concat_softmax_mixed.prototxt")
    with pytest.raises(UpgradeError) as info:
        read_net(path)
    e = info.value
    assert e.path == str(path) and (e.line, e.col) == (8, 1)
    assert "cannot mix V1 `layers` and V2 `layer`" in e.message
    assert "'layer' and 'layers'" in e.message  # Caffe's own words
    assert "V1 `layers` at lines 1-7" in e.message and "V2 `layer` at lines 8-" in e.message
    assert "caffe2torch upgrade" in (e.hint or "")
    assert "type: INNER_PRODUCT" in (e.hint or "")  # the `layer` blocks are V1 in disguise
    with pytest.raises(UpgradeError):
        upgrade_text(path.read_text())


@pytest.mark.shared
def test_v1_file_with_a_v2_layer_appended() -> None:
    path = need_shared(SEEDS / "siamese_imagenet_v1.prototxt")
    v1 = path.read_text()
    n_lines = v1.count("\n")
    text = v1 + 'layer {\n  name: "extra"\n  type: "ReLU"\n  bottom: "x"\n  top: "x"\n}\n'
    with pytest.raises(UpgradeError) as info:
        read_net_text(text, "m.prototxt")
    e = info.value
    assert (e.line, e.col) == (n_lines + 1, 1)
    assert f"V2 `layer` at lines {n_lines + 1}-{n_lines + 6}" in e.message
    assert "V1 `layers` at lines 2-" in e.message
    assert len(read_net_text(v1).layer) == 47  # the V1 file alone upgrades


def test_mixed_message_refused_without_positions() -> None:
    net = caffe_pb2.NetParameter()
    net.layer.add(name="a", type="ReLU")
    net.layers.add(name="b", type=caffe_pb2.V1LayerParameter.RELU)
    with pytest.raises(UpgradeError, match="cannot mix"):
        upgrade_net(net)


# --------------------------------------------------------------------------- upgrades


def test_v0_padding_is_folded_into_the_conv() -> None:
    text = """name: "v0"
input: "data"
input_dim: 1 input_dim: 3 input_dim: 9 input_dim: 9
layers { layer { name: "pad1" type: "padding" pad: 2 } bottom: "data" top: "pad1" }
layers { layer { name: "conv1" type: "conv" num_output: 4 kernelsize: 3 stride: 2
                 biasterm: false blobs_lr: 1 blobs_lr: 2 weight_decay: 1 weight_decay: 0 }
         bottom: "pad1" top: "conv1" }
layers { layer { name: "pool1" type: "pool" pool: AVE kernelsize: 2 } bottom: "conv1"
         top: "pool1" }
layers { layer { name: "drop" type: "dropout" dropout_ratio: 0.3 num_output: 3 }
         bottom: "pool1" top: "pool1" }
"""
    report = upgrade_net_report(_parse_raw(text))
    net = report.net
    assert [lp.name for lp in net.layer] == ["input", "conv1", "pool1", "drop"]
    assert report.origin == [None, 1, 2, 3]
    conv = net.layer[1]
    assert conv.type == "Convolution" and list(conv.bottom) == ["data"]
    cp = conv.convolution_param
    assert (list(cp.pad), list(cp.kernel_size), list(cp.stride)) == ([2], [3], [2])
    assert cp.num_output == 4 and cp.HasField("bias_term") and not cp.bias_term
    assert [(p.lr_mult, p.decay_mult) for p in conv.param] == [(1, 1), (2, 0)]
    pool = net.layer[2].pooling_param
    assert pool.pool == caffe_pb2.PoolingParameter.AVE and pool.kernel_size == 2
    # Caffe logs the misplaced num_output and carries on
    assert report.warnings == ["Unknown parameter num_output for layer type dropout"]
    assert list(net.layer[0].input_param.shape[0].dim) == [1, 3, 9, 9]


def test_v0_unknown_type_is_refused() -> None:
    text = 'layers { layer { name: "lc" type: "locally_connected" } }\n'
    with pytest.raises(UpgradeError, match="Unknown layer name: locally_connected") as info:
        read_net_text(text)
    assert info.value.line == 1


def test_v1_params_sharing_and_rules() -> None:
    text = """layers {
  name: "ip" type: INNER_PRODUCT bottom: "x" top: "y"
  param: "w" param: "b" blob_share_mode: PERMISSIVE
  blobs_lr: 1 blobs_lr: 2 weight_decay: 1 weight_decay: 0 loss_weight: 0.5
  inner_product_param { num_output: 3 }
  include { phase: TEST } exclude { stage: "deploy" }
}
layers { name: "none" type: NONE }
layers { name: "untyped" }
"""
    net = read_net_text(text)
    ip = net.layer[0]
    assert ip.type == "InnerProduct" and ip.inner_product_param.num_output == 3
    assert [(p.name, p.lr_mult, p.decay_mult) for p in ip.param] == [("w", 1, 1), ("b", 2, 0)]
    assert ip.param[0].share_mode == caffe_pb2.ParamSpec.PERMISSIVE
    assert not ip.param[1].HasField("share_mode")
    assert list(ip.loss_weight) == [0.5]
    assert ip.include[0].phase == caffe_pb2.TEST and ip.exclude[0].stage == ["deploy"]
    assert net.layer[1].HasField("type") and net.layer[1].type == ""
    assert not net.layer[2].HasField("type")


def test_every_v1_type_and_field_is_handled() -> None:
    assert set(caffe_pb2.V1LayerParameter.LayerType.keys()) <= set(V1_TYPES)
    layer_fields = caffe_pb2.LayerParameter.DESCRIPTOR.fields_by_name
    special = {"param", "blob_share_mode", "blobs_lr", "weight_decay", "layer", "type"}
    for fd in caffe_pb2.V1LayerParameter.DESCRIPTOR.fields:
        if fd.name not in special:
            assert fd.name in layer_fields, fd.name


def test_data_transformation_upgrade_matches_caffe_quirk() -> None:
    text = """layers { name: "d" type: DATA data_param { source: "s" mean_file: "m" mirror: true
           crop_size: 7 scale: 0.5 } top: "data" }
layers { name: "d2" type: IMAGE_DATA top: "x" }
"""
    net = read_net_text(text)
    t = net.layer[0].transform_param
    assert (t.mean_file, t.mirror, t.crop_size, t.scale) == ("m", True, 7, 0.5)
    assert not net.layer[0].data_param.HasField("mean_file")
    # Caffe's macro creates empty image_data_param / transform_param on every data layer
    assert net.layer[1].HasField("transform_param")
    assert net.layer[1].HasField("image_data_param")


def test_input_shape_and_bare_input() -> None:
    net = read_net_text('input: "a" input: "b"\ninput_shape { dim: 1 dim: 2 }\n'
                        'input_shape { dim: 5 }\nlayer { name: "r" type: "ReLU" }\n')
    assert [lp.name for lp in net.layer] == ["input", "r"]
    assert [list(s.dim) for s in net.layer[0].input_param.shape] == [[1, 2], [5]]
    assert list(net.layer[0].top) == ["a", "b"]
    bare = read_net_text('input: "a"\nlayer { name: "r" type: "ReLU" }\n')
    assert [lp.name for lp in bare.layer] == ["r"] and not bare.input


def test_too_few_input_dims_is_refused() -> None:
    with pytest.raises(UpgradeError, match="input_dim") as info:
        read_net_text('name: "n"\ninput: "a"\ninput_dim: 1\ninput_dim: 3\n')
    assert info.value.line == 2


def test_batchnorm_with_three_param_specs() -> None:
    text = ('layer { name: "bn" type: "BatchNorm" param { lr_mult: 1 name: "m" } '
            "param { lr_mult: 1 } param { lr_mult: 1 decay_mult: 1 } }\n"
            'layer { name: "bn2" type: "BatchNorm" param { lr_mult: 1 } }\n')
    net = read_net_text(text)
    assert [(p.lr_mult, p.decay_mult) for p in net.layer[0].param] == [(0, 0)] * 3
    assert net.layer[0].param[0].name == "m"
    assert net.layer[1].param[0].lr_mult == 1


def test_upgrade_does_not_touch_its_argument() -> None:
    raw = _parse_raw('layers { name: "r" type: RELU }\ninput: "x"\ninput_dim: 1\n'
                     "input_dim: 1\ninput_dim: 1\ninput_dim: 1\n")
    before = raw.SerializeToString()
    assert needs_upgrade(raw)
    up = upgrade_net(raw)
    assert raw.SerializeToString() == before and not needs_upgrade(up)


# --------------------------------------------------------------------------- solvers


def test_solver_type_upgrade_and_both_refused(tmp_path: Path) -> None:
    solver = read_solver_text('net: "n.prototxt"\nsolver_type: ADAGRAD\nbase_lr: 0.1\n')
    assert solver.type == "AdaGrad" and not solver.HasField("solver_type")
    path = tmp_path / "solver.prototxt"
    path.write_text('net: "n.prototxt"\nbase_lr: 0.1\nsolver_type: SGD\ntype: "Adam"\n')
    with pytest.raises(UpgradeError, match="solver_type") as info:
        read_solver(path)
    assert (info.value.path, info.value.line) == (str(path), 3)


def test_inline_v1_net_is_upgraded() -> None:
    text = 'base_lr: 0.1\nnet_param {\n  name: "n"\n  layers { name: "r" type: RELU }\n}\n'
    solver = read_solver_text(text)
    assert [lp.type for lp in solver.net_param.layer] == ["ReLU"]
    assert not solver.net_param.layers
    assert "type: \"ReLU\"" in upgrade_text(text)


def test_upgrade_text_and_caffe_number_format() -> None:
    text = 'layers { name: "c" type: CONVOLUTION blobs_lr: 1 weight_decay: 0.0001 }\n'
    out = upgrade_text(text)
    assert out == (
        'layer {\n  name: "c"\n  type: "Convolution"\n  param {\n    lr_mult: 1\n'
        "    decay_mult: 0.0001\n  }\n}\n"
    )
    solver = caffe_pb2.SolverParameter(base_lr=1e-5, delta=0.1, momentum=0.9)
    assert net_to_text(solver) == "base_lr: 1e-05\nmomentum: 0.9\ndelta: 0.1\n"
    assert upgrade_text('solver_type: NESTEROV\nbase_lr: 0.01\n') == (
        'base_lr: 0.01\ntype: "Nesterov"\n'
    )
