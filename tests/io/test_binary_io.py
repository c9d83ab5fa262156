"""Binary Caffe files: caffemodel (V0/V1/V2), mean binaryproto, solverstate.

Against ../shared: every corpus binary reads; the upgraded structure and blob checksums
equal what BVLC's upgrade_net_proto_binary wrote (golden/upgrade net_binary cases).
Everywhere: round trips, legacy 4-D blobs, damaged files -> our typed errors.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import numpy as np
import pytest
from google.protobuf import text_format

from caffe2torch.errors import CaffeError, ParseError, WeightsError, WriteError
from caffe2torch.io import wire
from caffe2torch.io.binary import (
    array_to_blob,
    atomic_write,
    blob_shape,
    blob_to_array,
    caffemodel_pieces,
    is_legacy_4d,
    looks_binary,
    read_binaryproto,
    read_blobproto,
    read_caffemodel,
    read_caffemodel_arrays,
    read_caffemodel_layers,
    read_solverstate,
    read_solverstate_arrays,
    upgrade_caffemodel,
    write_binaryproto,
    write_caffemodel,
    write_caffemodel_arrays,
    write_solverstate,
)
from caffe2torch.proto import caffe_pb2
from caffe2torch.proto.forks import FORK_FIELDS
from tests.conftest import CORPUS, GOLDEN, need_shared

NET_FORMATS = ("V1-binary", "V2-binary")


def _rows(formats: tuple[str, ...]) -> list[str]:
    manifest = CORPUS / "MANIFEST.tsv"
    if not manifest.exists():
        return []
    with manifest.open(newline="") as f:
        return [r["path"] for r in csv.DictReader(f, delimiter="\t") if r["format"] in formats]


CAFFEMODELS = _rows(NET_FORMATS)
MEANS = _rows(("binaryproto",))


def _golden_cases() -> list[Path]:
    root = GOLDEN / "upgrade"
    if not root.exists():
        return []
    out = []
    for meta in sorted(root.glob("*/meta.json")):
        if json.loads(meta.read_text())["kind"] == "net_binary":
            out.append(meta.parent)
    return out


GOLDEN_BINARY = _golden_cases()


def _without_blobs(layer: caffe_pb2.LayerParameter) -> caffe_pb2.LayerParameter:
    out = caffe_pb2.LayerParameter()
    out.CopyFrom(layer)
    out.ClearField("blobs")
    return out


def _drop_fork_fields(msg) -> None:
    """BVLC's schema lacks the fields forks added (e.g. happynear's Parameter
    blob_filler): Caffe keeps them as unknown bytes, its text output omits them."""
    forks = FORK_FIELDS.get(msg.DESCRIPTOR.name, {})
    for fd, value in msg.ListFields():
        if fd.name in forks:
            msg.ClearField(fd.name)
        elif fd.message_type is not None:
            for sub in value if fd.is_repeated else [value]:
                _drop_fork_fields(sub)


# ----------------------------------------------------------------------------- corpus


@pytest.mark.shared
@pytest.mark.parametrize("rel", CAFFEMODELS)
def test_corpus_caffemodel_reads(rel: str) -> None:
    path = need_shared(CORPUS / rel)
    assert looks_binary(path)
    full = read_caffemodel(path)
    net, arrays = read_caffemodel_layers(path)
    assert len(full.layers) == 0 and len(net.layers) == 0 and len(full.layer) > 0
    assert len(net.layer) == len(full.layer) == len(arrays)
    n_values = 0
    for layer, struct, got in zip(full.layer, net.layer, arrays):
        assert _without_blobs(layer) == _without_blobs(struct)
        assert len(layer.blobs) == len(struct.blobs) == len(got)
        for blob, head, arr in zip(layer.blobs, struct.blobs, got):
            assert len(head.data) == 0 and blob_shape(head) == blob_shape(blob)
            np.testing.assert_array_equal(arr, blob_to_array(blob))
            assert arr.flags.c_contiguous and arr.flags.writeable and arr.flags.aligned
            n_values += arr.size
    assert n_values > 0
    by_name = read_caffemodel_arrays(path)[1]
    assert set(by_name) == {ly.name for ly, a in zip(net.layer, arrays) if a}


@pytest.mark.shared
@pytest.mark.parametrize("rel", CAFFEMODELS)
def test_corpus_caffemodel_round_trip(rel: str, tmp_path: Path) -> None:
    path = need_shared(CORPUS / rel)
    full = read_caffemodel(path)
    out = tmp_path / "out.caffemodel"
    write_caffemodel(out, full)
    assert read_caffemodel(out) == full
    # the fast path: arrays out, arrays in, same structure and values
    net, arrays = read_caffemodel_layers(path)
    write_caffemodel_arrays(out, net, arrays)
    assert read_caffemodel(out) == full
    net2, arrays2 = read_caffemodel_layers(out)
    assert net2 == net
    for a, b in zip(arrays, arrays2):
        assert all(np.array_equal(x, y) and x.dtype == y.dtype for x, y in zip(a, b))
    # upgrade_net_proto_binary: blobs copied byte for byte
    upgrade_caffemodel(path, out)
    assert read_caffemodel(out) == full
    assert [p.name for p in tmp_path.iterdir()] == ["out.caffemodel"]  # no temp files left


@pytest.mark.shared
@pytest.mark.parametrize("rel", MEANS)
def test_corpus_binaryproto(rel: str, tmp_path: Path) -> None:
    path = need_shared(CORPUS / rel)
    arr = read_binaryproto(path)
    blob = read_blobproto(path)
    assert arr.ndim == 4 and arr.shape[:2] == (1, 3) and arr.dtype == np.float32
    np.testing.assert_array_equal(arr, blob_to_array(blob))
    assert 0 < float(arr.mean()) < 255
    out = tmp_path / "mean.binaryproto"
    write_binaryproto(out, blob)
    assert read_blobproto(out) == blob
    write_binaryproto(out, arr, legacy_4d=is_legacy_4d(blob))
    assert read_blobproto(out) == blob


# ----------------------------------------------------------------------------- goldens


def _checksums(arr: np.ndarray) -> dict[str, object]:
    flat = arr.reshape(-1).astype(np.float64)
    return {
        "count": int(flat.size),
        "sum": float(flat.sum()),
        "abs_sum": float(np.abs(flat).sum()),
        "first": [float(v) for v in flat[:4]],
    }


@pytest.mark.shared
@pytest.mark.parametrize("case", GOLDEN_BINARY, ids=[c.name for c in GOLDEN_BINARY])
def test_golden_upgrade_binary(case: Path) -> None:
    meta = json.loads((case / "meta.json").read_text())
    want = json.loads((case / "out_structure.json").read_text())
    path = need_shared(CORPUS / meta["source"])
    net = read_caffemodel(path)
    _, arrays = read_caffemodel_layers(path)
    assert net.name == want["name"]
    assert len(net.layer) == want["n_layer"] and len(net.layers) == want["n_layers_v1"]
    assert list(net.input) == want["input"] and list(net.input_dim) == want["input_dim"]
    for layer, got_arrays, exp in zip(net.layer, arrays, want["layer"]):
        assert (layer.name, layer.type) == (exp["name"], exp["type"])
        assert list(layer.bottom) == exp["bottom"] and list(layer.top) == exp["top"]
        assert layer.phase == exp["phase"]
        expected_layer = text_format.Parse(exp["text_without_blobs"], caffe_pb2.LayerParameter())
        ours = _without_blobs(layer)
        _drop_fork_fields(ours)
        ours.DiscardUnknownFields()  # fork fields our schema lacks too (text omits them)
        assert ours == expected_layer, layer.name
        assert len(layer.blobs) == len(exp["blobs"]) == len(got_arrays)
        for blob, arr, eb in zip(layer.blobs, got_arrays, exp["blobs"]):
            # the golden calls a blob without a `shape` field legacy and lists its 4 fields
            legacy = not blob.HasField("shape")
            shape = ([blob.num, blob.channels, blob.height, blob.width] if legacy
                     else list(blob.shape.dim))
            assert (shape, legacy) == (eb["shape"], eb["legacy_4d"]), layer.name
            assert len(blob.double_data) == eb["n_double_data"]
            sums = _checksums(arr)
            assert sums["count"] == eb["count"]
            assert sums["first"] == eb["first"]
            assert sums["sum"] == pytest.approx(eb["sum"], rel=1e-9, abs=1e-9)
            assert sums["abs_sum"] == pytest.approx(eb["abs_sum"], rel=1e-9)


# ----------------------------------------------------------------------------- blobs


def test_legacy_4d_blob() -> None:
    arr = np.arange(20, dtype=np.float32).reshape(4, 5)
    blob = array_to_blob(arr, legacy_4d=True)
    assert is_legacy_4d(blob) and not blob.HasField("shape")
    assert (blob.num, blob.channels, blob.height, blob.width) == (1, 1, 4, 5)
    assert blob_to_array(blob).shape == (1, 1, 4, 5)  # Blob::FromProto keeps the 4 dims
    new = array_to_blob(arr)
    assert not is_legacy_4d(new) and list(new.shape.dim) == [4, 5]
    np.testing.assert_array_equal(blob_to_array(new), arr)
    with pytest.raises(ValueError, match=r"the blob has 5 axes \(1x1x1x1x2\).*no BlobShape"):
        array_to_blob(np.zeros((1, 1, 1, 1, 2)), legacy_4d=True)


def test_blob_shape_rules() -> None:
    scalar = caffe_pb2.BlobProto(data=[-1.0])  # no shape at all: a scalar, one value
    assert blob_shape(scalar) == () and blob_to_array(scalar).shape == ()
    only_width = caffe_pb2.BlobProto(width=3, data=[1, 2, 3])  # legacy fields default to 0
    assert blob_shape(only_width) == (0, 0, 0, 3)
    with pytest.raises(WeightsError):
        blob_to_array(only_width)
    doubles = array_to_blob(np.array([0.1, 0.2], dtype=np.float64))
    assert len(doubles.double_data) == 2 and len(doubles.data) == 0
    assert blob_to_array(doubles).dtype == np.float64
    both = caffe_pb2.BlobProto(data=[9.0, 9.0], double_data=[1.0, 2.0])
    both.shape.dim.append(2)
    np.testing.assert_array_equal(blob_to_array(both), [1.0, 2.0])  # double_data wins


def test_binaryproto_unusual_encodings(tmp_path: Path) -> None:
    """Unpacked floats, data split in two packed runs, double_data, diffs: all read."""
    values = np.arange(6, dtype="<f4")
    shape = wire.shape_header((2, 3))
    packed = [wire.len_header(5, 12) + values[:3].tobytes(),
              wire.len_header(5, 12) + values[3:].tobytes()]
    diff = wire.len_header(6, 24) + values.tobytes()
    path = tmp_path / "split.binaryproto"
    path.write_bytes(packed[0] + diff + shape + packed[1])
    np.testing.assert_array_equal(read_binaryproto(path), values.reshape(2, 3))
    unpacked = b"".join(wire.key(5, wire.I32) + v.tobytes() for v in values)
    path.write_bytes(shape + unpacked)
    np.testing.assert_array_equal(read_binaryproto(path), values.reshape(2, 3))
    blob = caffe_pb2.BlobProto()
    blob.ParseFromString(shape + unpacked)
    np.testing.assert_array_equal(blob_to_array(blob), values.reshape(2, 3))
    doubles = np.linspace(0, 1, 6)
    write_binaryproto(path, doubles.reshape(1, 6))
    got = read_binaryproto(path)
    assert got.dtype == np.float64 and got.shape == (1, 6)
    np.testing.assert_array_equal(got.reshape(-1), doubles)


# ----------------------------------------------------------------------------- nets


def _v2_net() -> tuple[caffe_pb2.NetParameter, dict[str, list[np.ndarray]]]:
    rng = np.random.default_rng(0)
    net = caffe_pb2.NetParameter(name="tiny")
    net.layer.add(name="data", type="Input", top=["data"]).input_param.shape.add(dim=[1, 3, 8, 8])
    conv = net.layer.add(name="conv", type="Convolution", bottom=["data"], top=["conv"])
    conv.convolution_param.num_output = 4
    conv.convolution_param.kernel_size.append(3)
    net.layer.add(name="relu", type="ReLU", bottom=["conv"], top=["conv"])
    net.layer.add(name="ip", type="InnerProduct", bottom=["conv"], top=["ip"])
    arrays = {
        "conv": [rng.standard_normal((4, 3, 3, 3)).astype(np.float32),
                 rng.standard_normal(4).astype(np.float32)],
        "ip": [rng.standard_normal((10, 144)).astype(np.float32),
               np.zeros(10, np.float32)],
    }
    return net, arrays


def test_write_arrays_then_read(tmp_path: Path) -> None:
    net, arrays = _v2_net()
    path = tmp_path / "tiny.caffemodel"
    write_caffemodel_arrays(path, net, arrays)
    got_net, got = read_caffemodel_arrays(path)
    assert set(got) == {"conv", "ip"}
    for name, arrs in arrays.items():
        for a, b in zip(arrs, got[name]):
            np.testing.assert_array_equal(a, b)
            assert b.dtype == np.float32
    assert [len(ly.blobs) for ly in got_net.layer] == [0, 2, 0, 2]
    full = read_caffemodel(path)
    write_caffemodel(tmp_path / "again.caffemodel", full)
    assert (tmp_path / "again.caffemodel").read_bytes() == path.read_bytes()
    # legacy 4-D blob headers are kept when the arrays still fit them
    write_caffemodel_arrays(path, net, arrays, legacy_4d=True)
    legacy_net, legacy_arrays = read_caffemodel_arrays(path)
    assert all(is_legacy_4d(b) for ly in legacy_net.layer for b in ly.blobs)
    assert legacy_arrays["ip"][0].shape == (1, 1, 10, 144)
    write_caffemodel_arrays(path, legacy_net, legacy_arrays)
    assert read_caffemodel_arrays(path)[0] == legacy_net


def test_v0_caffemodel_upgrades_with_blobs(tmp_path: Path) -> None:
    """A V0 caffemodel (layers { layer { type: "conv" blobs ... } }): padding layers fold
    away and each blob stays with its layer."""
    net = caffe_pb2.NetParameter(name="v0", input=["data"], input_dim=[1, 3, 9, 9])
    pad = net.layers.add(bottom=["data"], top=["pad1"])
    pad.layer.name, pad.layer.type, pad.layer.pad = "pad1", "padding", 1
    conv = net.layers.add(bottom=["pad1"], top=["conv1"])
    conv.layer.name, conv.layer.type, conv.layer.num_output = "conv1", "conv", 2
    conv.layer.kernelsize = 3
    w = np.arange(54, dtype=np.float32).reshape(2, 3, 3, 3)
    conv.layer.blobs.add().CopyFrom(array_to_blob(w, legacy_4d=True))
    conv.layer.blobs.add().CopyFrom(array_to_blob(np.ones(2, np.float32), legacy_4d=True))
    ip = net.layers.add(bottom=["conv1"], top=["ip1"])
    ip.layer.name, ip.layer.type, ip.layer.num_output = "ip1", "innerproduct", 3
    ip.layer.blobs.add().CopyFrom(array_to_blob(np.full((3, 98), 2.0, np.float32)))
    path = tmp_path / "v0.caffemodel"
    path.write_bytes(net.SerializeToString())
    full = read_caffemodel(path)
    assert [(ly.name, ly.type) for ly in full.layer] == [
        ("input", "Input"), ("conv1", "Convolution"), ("ip1", "InnerProduct")]
    assert full.layer[1].convolution_param.pad == [1]
    assert list(full.layer[1].bottom) == ["data"]
    structure, arrays = read_caffemodel_arrays(path)
    np.testing.assert_array_equal(arrays["conv1"][0], w)
    assert arrays["conv1"][1].shape == (1, 1, 1, 2)
    assert arrays["ip1"][0].shape == (3, 98) and set(arrays) == {"conv1", "ip1"}
    assert [len(ly.blobs) for ly in structure.layer] == [0, 2, 1]
    for layer, struct in zip(full.layer, structure.layer):
        assert _without_blobs(layer) == _without_blobs(struct)


def test_duplicate_layer_names_keep_the_last(tmp_path: Path) -> None:
    net = caffe_pb2.NetParameter()
    net.layer.add(name="x", type="Bias")
    net.layer.add(name="x", type="Bias")
    path = tmp_path / "dup.caffemodel"
    write_caffemodel_arrays(path, net, [[np.zeros(2, np.float32)], [np.ones(2, np.float32)]])
    _, by_pos = read_caffemodel_layers(path)
    assert [a[0][0] for a in by_pos] == [0.0, 1.0]
    np.testing.assert_array_equal(read_caffemodel_arrays(path)[1]["x"][0], [1.0, 1.0])


# ----------------------------------------------------------------------------- solverstate


def test_solverstate_round_trip(tmp_path: Path) -> None:
    history = [np.full((2, 3), 0.5, np.float32), np.arange(4, dtype=np.float32)]
    state = caffe_pb2.SolverState(iter=100, learned_net="m_iter_100.caffemodel",
                                  current_step=2)
    path = tmp_path / "m_iter_100.solverstate"
    write_solverstate(path, state, history)
    full = read_solverstate(path)
    assert (full.iter, full.learned_net, full.current_step) == (100, "m_iter_100.caffemodel", 2)
    assert [list(b.shape.dim) for b in full.history] == [[2, 3], [4]]
    head, arrays = read_solverstate_arrays(path)
    assert head.iter == 100 and len(head.history) == 2 and len(head.history[0].data) == 0
    for a, b in zip(history, arrays):
        np.testing.assert_array_equal(a, b)
    write_solverstate(tmp_path / "copy.solverstate", full)
    assert (tmp_path / "copy.solverstate").read_bytes() == path.read_bytes()


# ----------------------------------------------------------------------------- damage


@pytest.fixture
def model(tmp_path: Path) -> Path:
    net, arrays = _v2_net()
    path = tmp_path / "model.caffemodel"
    write_caffemodel_arrays(path, net, arrays)
    return path


@pytest.fixture
def small_model(tmp_path: Path) -> Path:
    """Mostly structure, few values: random bit flips land in fields, not floats."""
    net, _ = _v2_net()
    small = {"conv": [np.ones((1, 1, 1, 1), np.float32)], "ip": [np.ones(1, np.float32)]}
    path = tmp_path / "small.caffemodel"
    write_caffemodel_arrays(path, net, small)
    return path


@pytest.mark.parametrize("fraction", [0.02, 0.1, 0.3, 0.5, 0.9, 0.999])
def test_truncated_caffemodel(model: Path, fraction: float) -> None:
    data = model.read_bytes()
    model.write_bytes(data[: int(len(data) * fraction)])
    for read in (read_caffemodel, read_caffemodel_arrays):
        with pytest.raises(ParseError) as info:
            read(model)
        assert info.value.path == str(model)
        assert "truncated" in str(info.value)


def test_bad_wire_type_and_huge_length(model: Path) -> None:
    data = bytearray(model.read_bytes())
    data[0] = (data[0] & ~7) | 7  # wire type 7 does not exist
    model.write_bytes(bytes(data))
    with pytest.raises(ParseError, match="wire type 7"):
        read_caffemodel_arrays(model)
    net, arrays = _v2_net()
    body = b"".join(bytes(p) for p in caffemodel_pieces(net, arrays))
    huge = wire.len_header(100, 1 << 40) + body
    model.write_bytes(huge)
    with pytest.raises(ParseError, match="needs 1099511627776 bytes"):
        read_caffemodel(model)


def test_random_bit_flips_give_typed_errors(small_model: Path) -> None:
    """A flipped bit either still reads (it hit a value) or gives our error, never a
    protobuf or numpy exception."""
    model = small_model
    data = model.read_bytes()
    rng = np.random.default_rng(1)
    typed = 0
    for pos in rng.integers(0, len(data), 200):
        flipped = bytearray(data)
        flipped[pos] ^= 1 << int(rng.integers(0, 8))
        model.write_bytes(bytes(flipped))
        for read in (read_caffemodel, read_caffemodel_arrays):
            try:
                read(model)
            except CaffeError as e:
                assert e.path == str(model)
                typed += 1
    assert typed > 0


def test_not_a_caffemodel(tmp_path: Path) -> None:
    text = tmp_path / "deploy.prototxt"
    text.write_text('name: "x"\nlayer { name: "a" type: "ReLU" }\n')
    assert not looks_binary(text)
    with pytest.raises(ParseError) as info:
        read_caffemodel(text)
    assert "read_net" in (info.value.hint or "")
    empty = tmp_path / "empty.caffemodel"
    empty.write_bytes(b"")
    with pytest.raises(ParseError, match="empty"):
        read_caffemodel_arrays(empty)
    with pytest.raises(ParseError, match="cannot read"):
        read_caffemodel(tmp_path / "missing.caffemodel")
    with pytest.raises(ParseError, match="empty"):
        read_binaryproto(empty)


def test_write_into_missing_folder(tmp_path: Path) -> None:
    net, arrays = _v2_net()
    with pytest.raises(WriteError) as info:
        write_caffemodel_arrays(tmp_path / "nope" / "m.caffemodel", net, arrays)
    assert info.value.path is not None and "nope" in info.value.path


def test_atomic_write_keeps_old_file_on_failure(model: Path) -> None:
    before = model.read_bytes()

    def pieces():
        yield b"partial"
        raise OSError(28, "No space left on device")

    with pytest.raises(WriteError, match="No space"):
        atomic_write(model, pieces())
    assert model.read_bytes() == before
    assert os.listdir(model.parent) == [model.name]


@pytest.mark.parametrize("data", [b"\x08\x80", b"\x08\x01\x12\x85"],
                         ids=["iter-varint-cut", "learned-net-cut"])
def test_cut_file_that_starts_like_a_solverstate_given_as_weights(tmp_path: Path,
                                                                  data: bytes) -> None:
    """The check that tells a .solverstate given as weights reads the file's fields: a file
    that starts like one but stops mid-field is still one ParseError naming it, never the
    wire reader's own exception."""
    path = tmp_path / "cut.caffemodel"
    path.write_bytes(data)
    with pytest.raises(ParseError) as info:
        read_caffemodel_arrays(path)
    assert info.value.path == str(path)
