"""Caffe's binary files: ``.caffemodel`` (NetParameter with blobs), mean ``.binaryproto``
(BlobProto) and ``.solverstate`` (SolverState).

Two ways to read a caffemodel:

- :func:`read_caffemodel_arrays` (what the net builder uses): the NetParameter without blob
  values, upgraded to V2, and every layer's blobs as numpy arrays. The values are copied
  once, straight from the file into aligned arrays (see :mod:`caffe2torch.io.wire`).
- :func:`read_caffemodel`: the whole NetParameter, blob values included, upgraded to V2, as
  Caffe's ``upgrade_net_proto_binary`` writes it.

Blob shapes follow Blob::FromProto: the deprecated num/channels/height/width win when any
is set (a legacy 4-D blob), else ``shape.dim`` (no dims: a scalar, one value);
``double_data`` wins over ``data`` when it holds any value.

Every write goes to a temporary file in the target folder, is fsync'ed, then renamed over
the target, so a crash never leaves half a file behind.
"""

from __future__ import annotations

import contextlib
import io
import mmap
import os
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
from google.protobuf.message import DecodeError, Message

from caffe2torch.errors import (
    CaffeError,
    LegacyShapeError,
    ParseError,
    WeightsError,
    WriteError,
)
from caffe2torch.io import wire
from caffe2torch.io.fork_schema import as_schema
from caffe2torch.io.translate import PiecesIO
from caffe2torch.io.upgrade import (
    UpgradeReport,
    needs_v0_upgrade,
    upgrade_net,
    upgrade_net_report,
)
from caffe2torch.proto import caffe_pb2

PathLike = str | os.PathLike[str]

# NetParameter.layer (100) holds LayerParameter (blobs = 7); NetParameter.layers (2) holds
# V1LayerParameter (blobs = 6), whose V0 ``layer`` (1) keeps its blobs in field 50.
_V2_LAYER, _V1_LAYERS = 100, 2
_LAYER_PLANS: dict[int, wire.Plan] = {
    _V2_LAYER: {7: wire.BLOB},
    _V1_LAYERS: {6: wire.BLOB, 1: {50: wire.BLOB}},
}
_SOLVERSTATE_PLAN: wire.Plan = {3: wire.BLOB}
_V0_BLOBS, _V1_BLOBS, _V2_BLOBS = (1, 50), (6,), (7,)

_NOT_BINARY_HINT = (
    "a caffemodel is a binary NetParameter; a text prototxt is read with read_net / "
    "`caffe2torch info FILE`"
)

# ----------------------------------------------------------------------------- blobs


def is_legacy_4d(blob: caffe_pb2.BlobProto) -> bool:
    """Whether the blob gives its shape in the deprecated num/channels/height/width."""
    return any(blob.HasField(f) for f in ("num", "channels", "height", "width"))


def blob_shape(blob: caffe_pb2.BlobProto) -> tuple[int, ...]:
    """The shape Blob::FromProto gives the blob (legacy 4-D fields first)."""
    if is_legacy_4d(blob):
        return (blob.num, blob.channels, blob.height, blob.width)
    return tuple(int(d) for d in blob.shape.dim)


def _count(shape: Sequence[int]) -> int:
    return int(np.prod(shape, dtype=np.int64)) if shape else 1


def _shaped(values: np.ndarray, shape: tuple[int, ...], what: str, path: str | None
            ) -> np.ndarray:
    need = _count(shape)
    if values.size != need or any(d < 0 for d in shape):
        raise WeightsError(
            f"{what} has {values.size} values but its shape {list(shape)} needs {need}",
            path=path,
            hint="the file is corrupt or was written by a tool that breaks Caffe's blob rules",
        )
    return values.reshape(shape)


def blob_to_array(blob: caffe_pb2.BlobProto) -> np.ndarray:
    """A BlobProto's values in its shape: float64 from ``double_data`` when it has any
    values, else float32 from ``data``. A count that does not fit the shape ->
    WeightsError."""
    if len(blob.double_data):
        values = np.array(blob.double_data, dtype=np.float64)
    else:
        values = np.array(blob.data, dtype=np.float32)
    return _shaped(values, blob_shape(blob), "the blob", None)


def _blob_bytes(arr: np.ndarray, legacy_4d: bool = False, header: bytes | None = None,
                what: str = "the blob") -> list[bytes | memoryview]:
    arr = np.asarray(arr)
    if header is None:
        if legacy_4d and arr.ndim > 4:
            raise legacy_shape_error(what, arr.shape)
        header = wire.shape_header(arr.shape, legacy_4d)
    return wire.blob_chunks(arr, header)


def legacy_shape_error(what: str, shape: Sequence[int]) -> LegacyShapeError:
    """The refusal to write a blob of more than 4 axes as num/channels/height/width (a fork
    schema whose BlobProto predates BlobShape: its Caffe's LegacyShape reads 4 axes only)."""
    dims = "x".join(str(int(d)) for d in shape)
    return LegacyShapeError(
        f"{what} has {len(shape)} axes ({dims}), but the schema it is written for has no "
        "BlobShape: its BlobProto holds only num/channels/height/width (4 axes at most)",
        hint="write it without --proto (our schema's BlobShape, which BVLC Caffe reads "
             "since 2015), or keep the blob at 4 axes or fewer: the fork's own Caffe cannot "
             "hold it either")


def array_to_blob(arr: np.ndarray, legacy_4d: bool = False) -> caffe_pb2.BlobProto:
    """A BlobProto holding ``arr``: its shape in ``shape.dim`` (or, with ``legacy_4d``, in
    num/channels/height/width, padded with leading 1s); float64 arrays in ``double_data``
    (as Blob<double>::ToProto), anything else as float32 ``data``."""
    blob = caffe_pb2.BlobProto()
    blob.ParseFromString(b"".join(_blob_bytes(arr, legacy_4d)))
    return blob


# ----------------------------------------------------------------------------- files in


def _open(path: PathLike):
    p = os.fspath(path)
    try:
        f = open(p, "rb", buffering=1 << 16)  # noqa: SIM115 - closed by the caller
        size = os.fstat(f.fileno()).st_size
    except OSError as e:
        raise ParseError(f"cannot read the file: {e.strerror or e}", path=p) from None
    return p, f, size


def _looks_like_text(head: bytes) -> bool:
    if not head:
        return False
    controls = set(range(0, 9)) | set(range(14, 32))
    return not any(b in controls for b in head[:4096])


def looks_binary(path: PathLike) -> bool:
    """Whether a file holds a binary protobuf rather than prototxt text (control bytes in
    its first 4 KiB; an empty file counts as text)."""
    p = os.fspath(path)
    try:
        with open(p, "rb") as f:
            head = f.read(4096)
    except OSError as e:
        raise ParseError(f"cannot read the file: {e.strerror or e}", path=p) from None
    return bool(head) and not _looks_like_text(head)


def _wire_error(path: str, e: wire.WireError, kind: str, where: str = "") -> ParseError:
    hint = "the file is truncated or damaged; copy or download it again"
    if isinstance(e, wire.BlobLimitError):
        return ParseError(f"{kind}: {e.message} at byte {e.offset}{where}", path=path,
                          hint="if you trust the file, raise the limit")
    try:
        with open(path, "rb") as f:
            if _looks_like_text(f.read(4096)):
                hint = _NOT_BINARY_HINT if kind == "caffemodel" else "this looks like a text file"
    except OSError:
        pass
    return ParseError(f"not a valid {kind}: {e.message} at byte {e.offset}{where}",
                      path=path, hint=hint)


def _head(path: str, n: int = 64) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read(n)
    except OSError:
        return b""


def binary_kind(head: bytes) -> str | None:
    """Which Caffe binary file starts with ``head``: "solverstate", "caffemodel", or None
    when the bytes do not tell. Caffe writes fields in number order, so a SolverState
    starts with ``iter`` (field 1, a varint) followed by learned_net, history or
    current_step (fields 2-4); a NetParameter with its ``name`` (field 1, bytes), V1
    ``layers`` (2) or ``layer`` (100); a BlobProto (mean file) with num/channels varints
    or data/shape (never field 1 as bytes)."""
    if head[:1] == b"\x08":
        i = 1
        while i < len(head) and head[i] & 0x80:
            i += 1
        follows = head[i + 1:i + 2]
        return "solverstate" if follows in (b"", b"\x12", b"\x1a", b"\x20") else None
    if head[:1] in (b"\x0a", b"\x12") or head[:2] == b"\xa2\x06":
        return "caffemodel"
    return None


def _solverstate_as_weights(path: str) -> ParseError | None:
    """The error for a .solverstate given where a caffemodel goes (None for another file):
    Caffe stops with "Failed to parse NetParameter file"."""
    head = _head(path, 4096)
    if binary_kind(head) != "solverstate":
        return None
    state = caffe_pb2.SolverState()
    learned = ""
    with contextlib.suppress(DecodeError, OSError, wire.WireError):
        with open(path, "rb") as f:
            r = wire.Reader(f, os.fstat(f.fileno()).st_size)
            state.ParseFromString(wire.strip_message(r, r.size, _SOLVERSTATE_PLAN,
                                                     wire.Walk("raw")))
        learned = state.learned_net
    where = f" (its weights are in '{learned}')" if learned else ""
    return ParseError(
        f"this is a solver state (.solverstate), not a caffemodel{where}",
        path=path, hint="weights (`train -weights`, `test -weights`) are a .caffemodel; a "
        ".solverstate resumes a run with `train -snapshot FILE`")


def _caffemodel_as_state(path: str) -> ParseError | None:
    """The error for a caffemodel given where a .solverstate goes (Caffe stops with
    'Incorrect length of history blobs')."""
    if binary_kind(_head(path)) != "caffemodel":
        return None
    stem = path[: -len(".caffemodel")] if path.endswith(".caffemodel") else None
    beside = f"{stem}.solverstate" if stem and os.path.exists(f"{stem}.solverstate") else None
    resume = f"resume with -snapshot {beside}" if beside else (
        "resume from the .solverstate the snapshot wrote beside it")
    return ParseError(
        "this is a caffemodel (a net's weights), not a solver state", path=path,
        hint=f"{resume}; to start a new run from these weights, give them with -weights")


@dataclass
class _Scan:
    """A caffemodel walked once: its NetParameter bytes without blob payloads and, per
    layer block (by field number: 100 ``layer`` / 2 ``layers``), the blobs met in it."""

    header: bytes
    blocks: dict[int, list[list[wire.BlobRecord]]]


def _open_as_ours(path: PathLike, proto: Any, name: str):
    """Like _open; with a fork schema ``proto``, the file re-keyed to our field numbers (in
    memory: io.translate copies blob payloads as slices)."""
    p, f, size = _open(path)
    schema = as_schema(proto)
    if schema is None or size == 0 or schema.translator(name).identical:
        return p, f, size  # the fork numbers this message as we do: read it as ours
    with f:
        mapped = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    try:
        pieces, _ = schema.translator(name).run_pieces(memoryview(mapped))
    except ParseError as e:
        e.path = p
        raise
    raw = PiecesIO(pieces, keep=mapped)
    return p, io.BufferedReader(raw, buffer_size=1 << 16), raw.size


def _scan_net(path: PathLike, mode: str, proto: Any = None) -> tuple[str, _Scan]:
    try:
        return _scan_net_checked(path, mode, proto)
    except ParseError as e:
        wrong_kind = _solverstate_as_weights(e.path) if e.path and proto is None else None
        if wrong_kind is not None:
            raise wrong_kind from None
        raise


def _scan_net_checked(path: PathLike, mode: str, proto: Any = None) -> tuple[str, _Scan]:
    p, f, size = _open_as_ours(path, proto, "NetParameter")
    with f:
        if size == 0:
            raise ParseError("the file is empty", path=p, hint="a caffemodel holds a NetParameter")
        r = wire.Reader(f, size)
        out: list[bytes] = []
        blocks: dict[int, list[list[wire.BlobRecord]]] = {_V2_LAYER: [], _V1_LAYERS: []}
        head = b""  # the start of the layer being read
        try:
            while r.pos < size:
                number, wt = r.tag(size)
                plan = _LAYER_PLANS.get(number)
                if plan is None or wt != wire.LEN:
                    out.append(r.passthrough(number, wt, size))
                    continue
                n = r.varint(size)
                r.need(n, size, "a layer")
                head = r.peek(min(n, 512))
                walk = wire.Walk(mode)
                body = wire.strip_message(r, r.pos + n, plan, walk)
                out.append(wire.len_header(number, len(body)) + body)
                blocks[number].append(walk.blobs)
                head = b""
        except wire.WireError as e:
            where = ""
            n_read = len(blocks[_V2_LAYER]) + len(blocks[_V1_LAYERS])
            if head:
                name = wire.peek_string(head, 1) or wire.peek_string(head, 4)
                where = f" (in layer {n_read} {name!r})" if name else f" (in layer {n_read})"
            raise _wire_error(p, e, "caffemodel", where) from None
    return p, _Scan(b"".join(out), blocks)


def _parse_structure(p: str, scan: _Scan) -> caffe_pb2.NetParameter:
    net = caffe_pb2.NetParameter()
    try:
        net.ParseFromString(scan.header)
    except DecodeError:
        raise _solverstate_as_weights(p) or ParseError(
            f"not a valid caffemodel: {_which_layer_is_bad(scan.header)} does not parse as "
            "a Caffe message (wrong field types or invalid text in it)",
            path=p, hint="the file is damaged, or it was written with another schema",
        ) from None
    if not len(net.layer) and not len(net.layers):
        hint = "the file is damaged, or it is not a caffemodel"
        with contextlib.suppress(OSError), open(p, "rb") as f:
            if _looks_like_text(f.read(4096)):
                hint = _NOT_BINARY_HINT
        raise _solverstate_as_weights(p) or ParseError(
            "not a caffemodel: the file holds no layers", path=p, hint=hint)
    return net


def _which_layer_is_bad(header: bytes) -> str:
    """Name the first layer block that protobuf refuses (only called on failure)."""
    r = wire.Reader.of_bytes(header)
    i = 0
    while r.pos < r.size:
        number, wt = r.tag(r.size)
        if number in _LAYER_PLANS and wt == wire.LEN:
            body = r.read(r.varint(r.size), r.size)
            msg: Message = (caffe_pb2.LayerParameter() if number == _V2_LAYER
                            else caffe_pb2.V1LayerParameter())
            try:
                msg.ParseFromString(body)
            except DecodeError:
                name = wire.peek_string(body, 1 if number == _V2_LAYER else 4)
                return f"layer {i} ({name!r})" if name is not None else f"layer {i}"
            i += 1
        else:
            r.passthrough(number, wt, r.size)
    return "the net header"


def _upgraded_blobs(
    p: str, net: caffe_pb2.NetParameter, scan: _Scan
) -> tuple[UpgradeReport, list[list[wire.BlobRecord]]]:
    """Upgrade ``net`` (UpgradeNetAsNeeded) and give each upgraded layer the blob records of
    the layer block it came from."""
    v1 = len(net.layers) > 0
    from_v0 = needs_v0_upgrade(net)
    report = upgrade_net_report(net, path=p)
    blocks = scan.blocks[_V1_LAYERS if v1 else _V2_LAYER]
    want = _V0_BLOBS if from_v0 else (_V1_BLOBS if v1 else _V2_BLOBS)
    per_layer = []
    for j in report.origin:
        recs = blocks[j] if j is not None else []
        per_layer.append([rec for rec in recs if rec.where == want])
    return report, per_layer


def read_caffemodel_layers(
    path: PathLike, proto: Any = None,
) -> tuple[caffe_pb2.NetParameter, list[list[np.ndarray]]]:
    """Like :func:`read_caffemodel_arrays`, with the arrays listed by layer position
    (``arrays[i]`` belongs to ``net.layer[i]``), which keeps layers of the same name apart."""
    return _in_ours_instead(_read_caffemodel_layers, path, proto, "weights",
                            lambda got: not any(len(a) for a in got[1]))


def _in_ours_instead(read: Callable[[PathLike, Any], R], path: PathLike, proto: Any,
                     what: str, empty: Callable[[R], bool]) -> R:
    """``read(path, proto)``; when a fork schema reads the file as garbage (an error) or
    empty (no ``what``) while our own numbers read it whole, a ParseError saying so: a
    snapshot that ``caffe2torch train --proto`` wrote before it wrote the fork's numbers."""
    try:
        got: R | None = read(path, proto)
        failure: CaffeError | None = None
    except (ParseError, WeightsError) as err:
        got, failure = None, err
    if proto is None or (got is not None and not empty(got)):
        if got is None:
            assert failure is not None
            raise failure
        return got
    try:
        ours = read(path, None)
    except CaffeError:
        ours = None
    if ours is None or empty(ours):  # not ours either: the fork's reading stands
        if failure is not None:
            raise failure
        assert got is not None
        return got
    schema = as_schema(proto)
    name = os.path.basename(str(getattr(schema, "path", None) or proto))
    why = failure.message if failure is not None else f"it holds no {what}"
    raise ParseError(
        f"the file does not read in the field numbers of {name} ({why}), but reads whole in "
        "caffe2torch's own numbers: it was written by `caffe2torch train --proto` before "
        "snapshots were written in the fork's numbers",
        path=os.fspath(path),
        hint="resume without --proto (the file is in caffe2torch's numbers), or re-save it "
             "in the fork's numbers: read it without proto and write it with "
             "caffe2torch.io.write_caffemodel_arrays / write_solverstate(..., proto=FORK)")


def _read_caffemodel_layers(
    path: PathLike, proto: Any = None,
) -> tuple[caffe_pb2.NetParameter, list[list[np.ndarray]]]:
    p, scan = _scan_net(path, "arrays", proto)
    report, records = _upgraded_blobs(p, _parse_structure(p, scan), scan)
    net = report.net
    arrays: list[list[np.ndarray]] = []
    for layer, recs in zip(net.layer, records):
        got = []
        for k, (blob, rec) in enumerate(zip(layer.blobs, recs)):
            what = f"blob {k} of layer {layer.name!r}"
            assert rec.values is not None
            got.append(_shaped(rec.values, blob_shape(blob), what, p))
        arrays.append(got)
    return net, arrays


def read_caffemodel_arrays(
    path: PathLike, proto: Any = None,
) -> tuple[caffe_pb2.NetParameter, dict[str, list[np.ndarray]]]:
    """A caffemodel -> (its NetParameter upgraded to V2, with each blob's shape fields but
    no values; ``{layer name: [arrays in blob order]}`` for the layers that have blobs).

    Arrays are float32 (float64 where the file used ``double_data``), shaped as
    Blob::FromProto shapes them (legacy 4-D blobs stay 4-D: ``is_legacy_4d(net.layer[i]
    .blobs[k])`` tells). Diffs (written only with ``snapshot_diff``) are skipped. When two
    layers share a name the later one wins, as in Net::CopyTrainedLayersFrom. ``proto``: a
    fork's caffe.proto (path or io.fork_schema.ForkSchema) that wrote the file.
    """
    net, per_layer = read_caffemodel_layers(path, proto)
    arrays = {layer.name: a for layer, a in zip(net.layer, per_layer) if a}
    return net, arrays


def read_caffemodel(path: PathLike, proto: Any = None) -> caffe_pb2.NetParameter:
    """A caffemodel -> NetParameter with blobs, upgraded to V2 (V0 and V1 files too), what
    Caffe's ``upgrade_net_proto_binary`` would write. ``proto``: the fork's caffe.proto that
    wrote it (its field numbers; fields only the fork has are left out)."""
    p, scan = _scan_net(path, "raw", proto)
    report, records = _upgraded_blobs(p, _parse_structure(p, scan), scan)
    net = report.net
    for layer, recs in zip(net.layer, records):
        for k, rec in enumerate(recs):
            try:
                layer.blobs.add().MergeFromString(rec.raw or b"")
            except DecodeError:
                raise ParseError(
                    f"not a valid caffemodel: blob {k} of layer {layer.name!r} is damaged",
                    path=p, hint="the file is truncated or damaged; copy or download it again",
                ) from None
    return net


_M = TypeVar("_M", bound=Message)
R = TypeVar("R")


def _read_message(path: PathLike, msg: _M, kind: str, proto: Any = None) -> _M:
    p, f, _ = _open_as_ours(path, proto, msg.DESCRIPTOR.name)
    with f:
        data = f.read()
    if not data:
        raise ParseError("the file is empty", path=p)
    try:
        msg.ParseFromString(data)
    except DecodeError:
        hint = ("this looks like a text file" if _looks_like_text(data[:4096])
                else "the file is truncated or damaged; copy or download it again")
        raise ParseError(f"not a valid {kind}", path=p, hint=hint) from None
    return msg


def read_binaryproto(path: PathLike) -> np.ndarray:
    """A mean file (one BlobProto, as ``compute_image_mean`` writes it) -> its array, in the
    blob's shape (legacy num/channels/height/width files stay 4-D)."""
    p, f, size = _open(path)
    with f:
        if size == 0:
            raise ParseError("the file is empty", path=p, hint="a .binaryproto holds a BlobProto")
        r = wire.Reader(f, size)
        rec = wire.BlobRecord(())
        try:
            wire.read_blob_fields(r, size, rec)
        except wire.WireError as e:
            raise _wire_error(p, e, "binaryproto") from None
    head = caffe_pb2.BlobProto()
    try:
        head.ParseFromString(rec.header)
    except DecodeError:
        raise ParseError("not a valid binaryproto: its shape fields are damaged", path=p,
                         hint="the file is truncated or damaged") from None
    assert rec.values is not None
    return _shaped(rec.values, blob_shape(head), "the blob", p)


def read_blobproto(path: PathLike) -> caffe_pb2.BlobProto:
    """A ``.binaryproto`` file as the BlobProto message itself."""
    return _read_message(path, caffe_pb2.BlobProto(), "binaryproto")


def read_solverstate(path: PathLike, proto: Any = None) -> caffe_pb2.SolverState:
    """A ``.solverstate`` (SolverState: iter, learned_net, history blobs, current_step);
    ``proto``: the fork's caffe.proto that wrote it."""
    _refuse_caffemodel_as_state(path, proto)
    return _read_message(path, caffe_pb2.SolverState(), "solverstate", proto)


def _refuse_caffemodel_as_state(path: PathLike, proto: Any) -> None:
    if proto is None:  # a fork's numbering may differ: its files are not sniffed
        wrong_kind = _caffemodel_as_state(os.fspath(path))
        if wrong_kind is not None:
            raise wrong_kind


def read_solverstate_arrays(
    path: PathLike, proto: Any = None
) -> tuple[caffe_pb2.SolverState, list[np.ndarray]]:
    """A ``.solverstate`` -> (the SolverState with history shapes but no values, the history
    blobs as arrays, in order)."""
    _refuse_caffemodel_as_state(path, proto)
    return _in_ours_instead(_read_solverstate_arrays, path, proto, "history",
                            lambda got: not got[1] and not got[0].iter)


def _read_solverstate_arrays(
    path: PathLike, proto: Any = None
) -> tuple[caffe_pb2.SolverState, list[np.ndarray]]:
    p, f, size = _open_as_ours(path, proto, "SolverState")
    with f:
        if size == 0:
            raise ParseError("the file is empty", path=p)
        r = wire.Reader(f, size)
        walk = wire.Walk("arrays")
        try:
            body = wire.strip_message(r, size, _SOLVERSTATE_PLAN, walk)
        except wire.WireError as e:
            raise _wire_error(p, e, "solverstate") from None
    state = caffe_pb2.SolverState()
    try:
        state.ParseFromString(body)
    except DecodeError:
        raise ParseError("not a valid solverstate", path=p, hint="the file is damaged") from None
    history = []
    for k, (blob, rec) in enumerate(zip(state.history, walk.blobs)):
        assert rec.values is not None
        history.append(_shaped(rec.values, blob_shape(blob), f"history blob {k}", p))
    return state, history


# ----------------------------------------------------------------------------- files out


def _umask() -> int:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return 0o022


def atomic_write(path: PathLike, pieces: Iterable[bytes | memoryview]) -> None:
    """Write ``pieces`` to a temporary file beside ``path``, fsync it, rename it over
    ``path`` (the folder is fsync'ed too where the system allows). Errors -> WriteError."""
    p = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(p))
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(p)}.", suffix=".tmp", dir=folder)
        with os.fdopen(fd, "wb") as f:
            for piece in pieces:
                f.write(piece)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, p)
        tmp = None
        with contextlib.suppress(OSError):
            dfd = os.open(folder, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
    except OSError as e:
        raise WriteError(f"cannot write the file: {e.strerror or e}", path=p) from None
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)


def write_caffemodel(path: PathLike, net: caffe_pb2.NetParameter, proto: Any = None) -> None:
    """Write a NetParameter (with its blobs) as a binary caffemodel, as it is; with a fork's
    caffe.proto, in the fork's field numbers (so that the fork reads it back)."""
    schema = as_schema(proto)
    data = net.SerializeToString()
    atomic_write(path, [schema.from_ours("NetParameter", data) if schema else data])


def _copy_fields(src: Message, dst: Message, skip: frozenset[str]) -> None:
    """Copy the set fields of ``src`` into ``dst`` except those named in ``skip``."""
    for fd, value in src.ListFields():
        if fd.name in skip:
            continue
        if fd.is_extension:
            if fd.is_repeated or fd.message_type is not None:
                raise WriteError(f"cannot copy extension {fd.full_name}")
            dst.Extensions[fd] = value  # type: ignore[index]
            continue
        target = getattr(dst, fd.name)
        if fd.is_repeated:
            if fd.message_type is not None:
                for v in value:
                    target.add().CopyFrom(v)
            else:
                target.extend(value)
        elif fd.message_type is not None:
            target.CopyFrom(value)
        else:
            setattr(dst, fd.name, value)


def _net_without_layers(net: caffe_pb2.NetParameter) -> bytes:
    """The net's own fields, serialized, without its layers (and so without their blobs)."""
    head = caffe_pb2.NetParameter()
    _copy_fields(net, head, frozenset({"layer", "layers"}))
    return head.SerializeToString()


def _layer_without_blobs(layer: caffe_pb2.LayerParameter) -> bytes:
    """The layer serialized without its blobs; fields our schema does not know are kept."""
    if not any(len(b.data) or len(b.double_data) or len(b.diff) or len(b.double_diff)
               for b in layer.blobs):
        return wire.drop_fields(layer.SerializeToString(), {7})
    out = caffe_pb2.LayerParameter()
    _copy_fields(layer, out, frozenset({"blobs"}))
    return out.SerializeToString()


def caffemodel_pieces(
    net: caffe_pb2.NetParameter,
    arrays: Mapping[str, Sequence[np.ndarray]] | Sequence[Sequence[np.ndarray]],
    *,
    legacy_4d: bool = False,
) -> list[bytes | memoryview]:
    """The bytes of a V2 caffemodel, in pieces: ``net``'s definition, with the blobs of each
    layer taken from ``arrays`` (by layer name, or a list by layer position) and, for
    layers it does not cover, from the layer itself. A layer blob without values whose
    shape equals the array's keeps its shape fields as they are (legacy 4-D included);
    other arrays get ``shape.dim`` (``legacy_4d``: num/channels/height/width)."""
    if len(net.layers):
        net = upgrade_net(net)
    pieces: list[bytes | memoryview] = [_net_without_layers(net)]
    by_name = isinstance(arrays, Mapping)
    for i, layer in enumerate(net.layer):
        own = (arrays.get(layer.name) if by_name  # type: ignore[union-attr]
               else arrays[i] if i < len(arrays) else None)  # type: ignore[index]
        if own is None:
            body: list[bytes | memoryview] = [layer.SerializeToString()]
        else:
            before, after = wire.split_before(_layer_without_blobs(layer), 7)
            body = [before]
            for k, arr in enumerate(own):
                arr = np.asarray(arr)
                header = None
                if k < len(layer.blobs):
                    old = layer.blobs[k]
                    if blob_shape(old) == arr.shape and not len(old.data) and not len(
                            old.double_data):
                        header = old.SerializeToString()
                blob = _blob_bytes(arr, legacy_4d, header,
                                   f"blob {k} of layer '{layer.name}'")
                body += [wire.len_header(7, wire.pieces_len(blob)), *blob]
            body.append(after)
        pieces += [wire.len_header(_V2_LAYER, wire.pieces_len(body)), *body]
    return pieces


def write_caffemodel_arrays(
    path: PathLike,
    net: caffe_pb2.NetParameter,
    arrays: Mapping[str, Sequence[np.ndarray]] | Sequence[Sequence[np.ndarray]],
    *,
    legacy_4d: bool = False,
    proto: Any = None,
) -> None:
    """Write a caffemodel from a net definition and numpy arrays (the fast path: the array
    bytes go to the file without passing through protobuf). See :func:`caffemodel_pieces`.
    ``proto``: write in that fork's field numbers (and legacy 4-D shapes for a fork
    without BlobShape)."""
    schema = as_schema(proto)
    legacy_4d = legacy_4d or (schema is not None and schema.legacy_blobs)
    try:
        pieces = caffemodel_pieces(net, arrays, legacy_4d=legacy_4d)
    except WriteError as err:
        err.path = err.path or os.fspath(path)
        raise
    if schema is not None:
        pieces = [schema.from_ours("NetParameter", b"".join(pieces))]
    atomic_write(path, pieces)


def upgrade_caffemodel(src: PathLike, dst: PathLike, proto: Any = None) -> UpgradeReport:
    """``upgrade_net_proto_binary src dst``: the net upgraded to V2 with every blob copied
    byte for byte. Returns the upgrade report (its ``net`` without blobs). ``proto``: the
    fork's caffe.proto that wrote ``src`` (the output uses our numbers)."""
    p, scan = _scan_net(src, "raw", proto)
    report, records = _upgraded_blobs(p, _parse_structure(p, scan), scan)
    net = report.net
    pieces: list[bytes | memoryview] = [_net_without_layers(net)]
    for layer, recs in zip(net.layer, records):
        before, after = wire.split_before(layer.SerializeToString(), 7)
        body: list[bytes | memoryview] = [before]
        for rec in recs:
            raw = rec.raw or b""
            body += [wire.len_header(7, len(raw)), raw]
        body.append(after)
        pieces += [wire.len_header(_V2_LAYER, wire.pieces_len(body)), *body]
    atomic_write(dst, pieces)
    return report


def write_binaryproto(
    path: PathLike, blob: np.ndarray | caffe_pb2.BlobProto, *, legacy_4d: bool = False
) -> None:
    """Write a mean file: an array (see :func:`array_to_blob`) or a BlobProto."""
    if isinstance(blob, caffe_pb2.BlobProto):
        atomic_write(path, [blob.SerializeToString()])
    else:
        try:
            atomic_write(path, _blob_bytes(np.asarray(blob), legacy_4d))
        except WriteError as err:
            err.path = err.path or os.fspath(path)
            raise


def write_solverstate(
    path: PathLike,
    state: caffe_pb2.SolverState,
    history: Sequence[np.ndarray] | None = None,
    proto: Any = None,
) -> None:
    """Write a SolverState as SGDSolver::SnapshotSolverStateToBinaryProto does. With
    ``history`` (arrays), those replace the state's history blobs and go to the file
    directly. ``proto``: a fork's caffe.proto; the state is written in its field numbers,
    as that fork's Caffe writes its snapshots (and reads them back)."""
    schema = as_schema(proto)
    if history is None:
        pieces: list[bytes | memoryview] = [state.SerializeToString()]
    else:
        head = caffe_pb2.SolverState()
        _copy_fields(state, head, frozenset({"history"}))
        before, after = wire.split_before(head.SerializeToString(), 3)
        legacy_4d = schema is not None and schema.legacy_blobs
        pieces = [before]
        for i, arr in enumerate(history):
            try:
                blob = _blob_bytes(np.asarray(arr), legacy_4d, what=f"history blob {i}")
            except WriteError as err:
                err.path = os.fspath(path)
                raise
            pieces += [wire.len_header(3, wire.pieces_len(blob)), *blob]
        pieces.append(after)
    if schema is not None:
        pieces = [schema.from_ours("SolverState", b"".join(pieces))]
    atomic_write(path, pieces)


__all__ = [
    "array_to_blob",
    "atomic_write",
    "blob_shape",
    "blob_to_array",
    "caffemodel_pieces",
    "is_legacy_4d",
    "looks_binary",
    "read_binaryproto",
    "read_blobproto",
    "read_caffemodel",
    "read_caffemodel_arrays",
    "read_caffemodel_layers",
    "read_solverstate",
    "read_solverstate_arrays",
    "upgrade_caffemodel",
    "write_binaryproto",
    "write_caffemodel",
    "write_caffemodel_arrays",
    "write_solverstate",
]
