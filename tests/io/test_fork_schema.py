"""A fork's caffe.proto given with proto=: compiled at run time, cached, mapped into our
schema by field name; files written by the fork read with its numbers and written back."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

import caffe2torch as c2t
from caffe2torch.cli.main import main
from caffe2torch.errors import BuildError, ParseError, WriteError
from caffe2torch.io import fork_schema
from caffe2torch.io.binary import (
    read_caffemodel,
    read_caffemodel_arrays,
    read_solverstate_arrays,
    write_caffemodel,
    write_caffemodel_arrays,
    write_solverstate,
)
from caffe2torch.io.fork_schema import load_schema
from caffe2torch.io.text import read_net_with_positions, read_solver
from caffe2torch.proto import caffe_pb2

FORK = Path(__file__).parents[1] / "fixtures" / "fork_proto" / "fork.proto"

NET = """name: "forknet"
fork_comment: "made by the fork"
input: "data"
input_dim: 2 input_dim: 3 input_dim: 6 input_dim: 6
layer {
  name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
  param { lr_mult: 1 } param { lr_mult: 2 }
  convolution_param { num_output: 4 kernel_size: 3 pad: 1
                      weight_filler { type: "gaussian" std: 0.1 } }
}
layer {
  name: "ip" type: "InnerProduct" bottom: "conv1" top: "ip"
  inner_product_param { num_output: 5 weight_filler { type: "gaussian" std: 0.1 } }
}
"""


@pytest.fixture(autouse=True)
def _private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAFFE2TORCH_CACHE_DIR", str(tmp_path / "cache"))
    fork_schema.clear_memory_cache()


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_fork_fields_are_mapped_by_name_and_kept_typed(tmp_path: Path) -> None:
    net, source = read_net_with_positions(_write(tmp_path / "n.prototxt", NET), proto=FORK)
    conv = net.layer[1]
    assert conv.convolution_param.num_output == 4  # fork number 50 -> ours 106
    assert [p.lr_mult for p in conv.param] == [1, 2]
    assert conv.convolution_param.weight_filler.std == pytest.approx(0.1)
    (comment,) = source.extras
    assert comment.typed and comment.path == ("fork_comment",)
    assert (comment.value, comment.line, comment.col) == ("made by the fork", 2, 1)


def test_fork_only_field_reaches_a_builder_and_blocks_one_that_ignores_it(
    tmp_path: Path,
) -> None:
    path = _write(tmp_path / "n.prototxt", NET.replace(
        "kernel_size: 3 pad: 1", 'kernel_size: 3 pad: 1 engine_flavor: "fast"'))
    with pytest.raises(BuildError) as info:
        c2t.load_net(path, proto=FORK)
    e = info.value
    assert (e.path, e.line, e.col) == (str(path), 8, 59)
    assert e.message == (
        "layer 'conv1' (Convolution): the field `engine_flavor: \"fast\"` is not in "
        "caffe2torch's schema, and building this layer needs its meaning")
    assert e.hint == ('a builder for Convolution that understands it can read it with '
                      'ctx.extra_field("convolution_param.engine_flavor") '
                      "(caffe2torch.register_layer(..., replace=True))")


def test_a_plug_in_builder_reads_the_fork_field(tmp_path: Path) -> None:
    from caffe2torch.layers import registry

    seen: list[object] = []
    registry._load_builtin_layers()
    saved = dict(registry._REGISTRY)
    original = registry._REGISTRY["Convolution"]

    def build(ctx: registry.BuildContext) -> torch.nn.Module:
        seen.append(ctx.extra_field("convolution_param.engine_flavor", "default"))
        return original.builder(ctx)

    try:
        registry.register_layer("Convolution", param="convolution_param",
                                blobs=original.blobs, replace=True)(build)
        path = _write(tmp_path / "n.prototxt", NET.replace(
            "kernel_size: 3 pad: 1", 'kernel_size: 3 pad: 1 engine_flavor: "fast"'))
        net = c2t.load_net(path, proto=FORK)
    finally:
        registry._REGISTRY.clear()
        registry._REGISTRY.update(saved)
    assert seen == ["fast"] and tuple(net.params["conv1"][0].shape) == (4, 3, 3, 3)


def test_caffemodel_round_trip_through_the_fork_numbers(tmp_path: Path) -> None:
    path = _write(tmp_path / "n.prototxt", NET)
    net = c2t.load_net(path, proto=FORK)
    model = tmp_path / "fork.caffemodel"
    net.save_caffemodel(model, proto=FORK)
    # the fork itself reads what we wrote: its field numbers, its blob layout
    fork_net = load_schema(FORK).net()
    fork_net.ParseFromString(model.read_bytes())
    assert [ly.name for ly in fork_net.layer] == ["input", "conv1", "ip"]
    fork_arrays = {ly.name: [np.asarray(b.data, np.float32).reshape(tuple(b.shape.dim))
                             for b in ly.blobs] for ly in fork_net.layer if ly.blobs}
    # ours read back with the same proto: identical arrays
    _, arrays = read_caffemodel_arrays(model, proto=FORK)
    for name, mine in net.params.items():
        for a, b, f in zip(mine, arrays[name], fork_arrays[name]):
            assert np.array_equal(a.detach().numpy(), b)
            assert np.array_equal(b, f)
    net2 = c2t.load_net(path, proto=FORK, weights=model)  # load_net's weights use proto too
    for name in net.params:
        for a, b in zip(net.params[name], net2.params[name]):
            assert torch.equal(a, b)
    # without the proto the file does not read as ours (its layers sit at field 5)
    with pytest.raises(ParseError):
        read_caffemodel(model)


def test_write_caffemodel_with_proto_and_read_caffemodel(tmp_path: Path) -> None:
    ours = caffe_pb2.NetParameter(name="x")
    layer = ours.layer.add(name="ip", type="InnerProduct")
    blob = layer.blobs.add()
    blob.shape.dim.extend([2, 3])
    blob.data.extend(np.arange(6, dtype=np.float32).tolist())
    out = tmp_path / "x.caffemodel"
    write_caffemodel(out, ours, proto=FORK)
    back = read_caffemodel(out, proto=FORK)
    assert back.layer[0].blobs[0] == blob


def test_solver_and_solverstate_read_with_the_fork(tmp_path: Path) -> None:
    solver = read_solver(_write(tmp_path / "s.prototxt",
                                'net: "n.prototxt"\nbase_lr: 0.5\nmax_iter: 3\n'
                                "warmup_iter: 7\n"), proto=FORK)
    assert (solver.net, solver.base_lr, solver.max_iter) == ("n.prototxt", 0.5, 3)
    schema = load_schema(FORK)
    state = schema.need("SolverState")(iter=12, learned_net="w.caffemodel", current_step=2)
    h = state.history.add()
    h.shape.dim.extend([2, 2])
    h.data.extend([1.0, 2.0, 3.0, 4.0])
    path = tmp_path / "x.solverstate"
    path.write_bytes(state.SerializeToString())
    got, history = read_solverstate_arrays(path, proto=FORK)
    assert (got.iter, got.learned_net, got.current_step) == (12, "w.caffemodel", 2)
    assert np.array_equal(history[0], np.array([[1, 2], [3, 4]], np.float32))


def test_solverstate_written_with_the_fork_numbers_reads_back(tmp_path: Path) -> None:
    history = [np.arange(6, dtype=np.float32).reshape(2, 3), np.ones(2, np.float32)]
    state = caffe_pb2.SolverState(iter=4, learned_net="w.caffemodel", current_step=1)
    path = tmp_path / "x.solverstate"
    write_solverstate(path, state, history, proto=FORK)
    fork = load_schema(FORK).need("SolverState")()  # what the fork's Caffe reads
    fork.ParseFromString(path.read_bytes())
    assert [list(h.shape.dim) for h in fork.history] == [[2, 3], [2]]
    got, arrays = read_solverstate_arrays(path, proto=FORK)
    assert (got.iter, got.learned_net, got.current_step) == (4, "w.caffemodel", 1)
    assert all(np.array_equal(a, b) for a, b in zip(arrays, history, strict=True))


def test_a_fork_without_blob_shape_gets_legacy_4d_blobs(tmp_path: Path) -> None:
    old = tmp_path / "old.proto"  # Caffe before BlobShape: num/channels/height/width only
    old.write_text(FORK.read_text().replace("  optional BlobShape shape = 17;\n", ""))
    schema = load_schema(old)
    assert schema.legacy_blobs and not load_schema(FORK).legacy_blobs
    weight = np.arange(6, dtype=np.float32).reshape(2, 3)
    path = tmp_path / "x.solverstate"
    write_solverstate(path, caffe_pb2.SolverState(iter=2), [weight], proto=old)
    fork = schema.need("SolverState")()
    fork.ParseFromString(path.read_bytes())
    h = fork.history[0]
    assert (h.num, h.channels, h.height, h.width) == (1, 1, 2, 3)
    _, arrays = read_solverstate_arrays(path, proto=old)
    assert np.array_equal(arrays[0].reshape(2, 3), weight)
    net = caffe_pb2.NetParameter(name="n")
    net.layer.add(name="ip", type="InnerProduct")
    model = tmp_path / "x.caffemodel"
    write_caffemodel_arrays(model, net, {"ip": [weight]}, proto=old)
    fork_net = schema.net()
    fork_net.ParseFromString(model.read_bytes())
    b = fork_net.layer[0].blobs[0]
    assert (b.num, b.channels, b.height, b.width) == (1, 1, 2, 3)


def test_v1_enum_type_only_the_fork_has_becomes_a_layer_type(tmp_path: Path) -> None:
    path = _write(tmp_path / "v1.prototxt", 'name: "v1"\nlayers {\n  name: "loc"\n'
                  "  type: LOCAL\n  bottom: \"data\"\n  top: \"loc\"\n}\n")
    net, _ = read_net_with_positions(path, proto=FORK)
    assert [ly.type for ly in net.layer] == ["LOCAL"]


def test_schema_is_cached_by_content(tmp_path: Path) -> None:
    first = load_schema(FORK)
    assert load_schema(FORK) is first  # in this process
    cached = Path(os.environ["CAFFE2TORCH_CACHE_DIR"]) / "schemas" / (first.digest + ".pb")
    assert cached.is_file()
    fork_schema.clear_memory_cache()
    again = load_schema(FORK)  # from the disk cache
    assert again is not first and again.digest == first.digest
    copy = tmp_path / "fork.proto"
    copy.write_text(FORK.read_text() + "\n// changed\n")
    assert load_schema(copy).digest != first.digest


def _error(tmp_path: Path, name: str, text: str) -> ParseError:
    path = _write(tmp_path / name, text)
    with pytest.raises(ParseError) as info:
        load_schema(path)
    return info.value


def test_a_proto_that_does_not_compile(tmp_path: Path) -> None:
    e = _error(tmp_path, "bad.proto", 'syntax = "proto2";\npackage caffe;\n'
               "message NetParameter {\n  optional string name = 1\n}\n")
    assert str(e) == (f'{tmp_path / "bad.proto"}:5:1: the schema does not compile: Expected ";"'
                      "\n  help: fix the .proto, or give the fork's src/caffe/proto/caffe.proto "
                      "unchanged")


def test_a_proto_that_imports_a_missing_file(tmp_path: Path) -> None:
    e = _error(tmp_path, "imp.proto", 'syntax = "proto2";\npackage caffe;\n'
               'import "caffe_extra.proto";\nmessage NetParameter { optional string name = 1; }\n')
    assert str(e) == (f'{tmp_path / "imp.proto"}:3:1: the schema does not compile: imports '
                      f'"caffe_extra.proto", which is not in {tmp_path}\n'
                      "  help: put caffe_extra.proto beside imp.proto "
                      "(imports are looked up there)")


def test_a_proto_without_net_parameter(tmp_path: Path) -> None:
    e = _error(tmp_path, "nonet.proto",
               'syntax = "proto2";\nmessage Foo { optional int32 a = 1; }\n')
    assert (e.line, e.col) == (1, 1)
    assert e.message == "the schema defines no message NetParameter, so it is not a Caffe schema"


def test_an_import_beside_the_proto_is_found(tmp_path: Path) -> None:
    _write(tmp_path / "extra.proto", 'syntax = "proto2";\npackage caffe;\n'
           "message ExtraParameter { optional float gain = 1 [default = 2]; }\n")
    _write(tmp_path / "main.proto", 'syntax = "proto2";\npackage caffe;\nimport "extra.proto";\n'
           "message LayerParameter { optional string name = 1; optional string type = 2;\n"
           "  optional ExtraParameter extra_param = 300; }\n"
           "message NetParameter { optional string name = 1;"
           " repeated LayerParameter layer = 100; }\n")
    net = _write(tmp_path / "n.prototxt", 'layer { name: "a" type: "X" extra_param { gain: 3 } }')
    _, source = read_net_with_positions(net, proto=tmp_path / "main.proto")
    (extra,) = source.extras
    assert extra.value == {"gain": 3.0} and extra.dotted == "extra_param"


def test_cli_proto_flag(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(tmp_path / "n.prototxt", NET)
    assert main(["info", str(path), "--proto", str(FORK)]) == 0
    assert "837 params" in capsys.readouterr().out
    assert main(["lint", str(path), "--proto", str(FORK)]) == 0  # fork_comment is the fork's
    assert main(["lint", str(path)]) == 1  # without it: C2T605 for fork_comment
    assert "C2T605" in capsys.readouterr().out
    bad = _write(tmp_path / "bad.proto", "message {")
    assert main(["info", str(path), "--proto", str(bad)]) == 2
    assert f"{bad}:1:" in capsys.readouterr().err


def test_draw_gives_the_builders_the_fork_fields(tmp_path: Path) -> None:
    # `hole` (the fork's dilation) makes conv1's kernel 5 wide: 8x8 -> 4x4, not 6x6
    path = _write(tmp_path / "n.prototxt", NET.replace("input_dim: 6 input_dim: 6",
                                                      "input_dim: 8 input_dim: 8").replace(
        "kernel_size: 3 pad: 1", "kernel_size: 3 hole: 2"))
    out = tmp_path / "n.dot"
    assert main(["draw", str(path), "--proto", str(FORK), "-o", str(out)]) == 0
    dot = out.read_text()
    assert "2x4x4x4" in dot and "2x4x6x6" not in dot
    assert "2x5" in dot  # the shapes after conv1 follow
    # without --proto `hole` is a field kept aside as unknown: the builder gets it all the same
    assert main(["draw", str(path), "-o", str(out)]) == 0
    assert "2x4x4x4" in out.read_text()


def test_a_blob_of_more_than_4_axes_for_a_fork_without_blob_shape(tmp_path: Path) -> None:
    """Refused with the blob, the reason and what to do; nothing written."""
    old = tmp_path / "old.proto"
    old.write_text(FORK.read_text().replace("  optional BlobShape shape = 17;\n", ""))
    weight = np.zeros((2, 1, 3, 3, 3), np.float32)  # a 3-D convolution's kernel
    net = caffe_pb2.NetParameter(name="n")
    net.layer.add(name="conv3d", type="Convolution")
    model = tmp_path / "x.caffemodel"
    with pytest.raises(WriteError) as caught:
        write_caffemodel_arrays(model, net, {"conv3d": [weight]}, proto=old)
    err = caught.value
    assert err.path == str(model) and not model.exists()
    assert err.message.startswith("blob 0 of layer 'conv3d' has 5 axes (2x1x3x3x3)")
    assert "no BlobShape" in err.message and "without --proto" in (err.hint or "")
    state = tmp_path / "x.solverstate"
    with pytest.raises(WriteError, match=r"history blob 1 has 5 axes") as caught:
        write_solverstate(state, caffe_pb2.SolverState(iter=2),
                          [np.zeros(3, np.float32), weight], proto=old)
    assert caught.value.path == str(state) and not state.exists()
    # our schema (and a fork with BlobShape) writes it
    write_caffemodel_arrays(model, net, {"conv3d": [weight]}, proto=FORK)
    assert model.exists()


def test_a_snapshot_in_our_numbers_read_with_the_fork_says_so(tmp_path: Path) -> None:
    """Snapshots `train --proto` wrote before it wrote the fork's numbers are in ours: read
    with the fork's schema they are garbage, and the error says what happened and what to do;
    a file that reads in neither keeps the fork's own error."""
    path = _write(tmp_path / "n.prototxt", NET)
    net = c2t.load_net(path, proto=FORK)
    model = tmp_path / "ours.caffemodel"
    net.save_caffemodel(model)  # our numbers, as the old snapshots were written
    with pytest.raises(ParseError) as caught:
        read_caffemodel_arrays(model, proto=FORK)
    err = caught.value
    assert err.path == str(model)
    assert err.message.startswith("the file does not read in the field numbers of fork.proto")
    assert "reads whole in caffe2torch's own numbers" in err.message
    assert "caffe2torch train --proto" in err.message
    assert "resume without --proto" in (err.hint or "")
    with pytest.raises(ParseError, match="reads whole in caffe2torch's own numbers"):
        c2t.load_net(path, proto=FORK, weights=model)
    state = tmp_path / "ours.solverstate"
    write_solverstate(state, caffe_pb2.SolverState(iter=4, learned_net=str(model)),
                      [np.ones((2, 3), np.float32)])
    with pytest.raises(ParseError, match="reads whole in caffe2torch's own numbers"):
        read_solverstate_arrays(state, proto=FORK)
    # read as written, nothing changes
    assert read_solverstate_arrays(state)[0].iter == 4
    junk = tmp_path / "junk.caffemodel"
    junk.write_bytes(b"\x08\x01" * 10)
    with pytest.raises(ParseError) as caught:
        read_caffemodel_arrays(junk, proto=FORK)
    assert "own numbers" not in caught.value.message
