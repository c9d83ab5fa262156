"""A small protobuf wire-format walker for Caffe's big binary files.

Protobuf's Python runtime parses a 500 MB caffemodel fine, but getting ``blob.data`` out of
it as numpy goes one float at a time. This walker reads the file field by field, copies
the packed ``data`` / ``double_data`` payloads of every BlobProto straight from the file into
numpy arrays (``readinto``: one copy, aligned), and hands back the rest of each message as
bytes, small enough for protobuf to parse. It knows only the wire format (varint, 64-bit,
length-delimited, 32-bit records) and a *plan*: which field numbers hold blobs and which hold
sub-messages to walk into; every other field is passed through unchanged.

Damage (a length running past its message or the file, a bad wire type, an endless varint)
raises :class:`WireError` with the byte offset; callers turn it into a ParseError that names
the file.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import BinaryIO

import numpy as np

from caffe2torch.limits import MAX_BLOB_BYTES_ENV, describe_bytes, human_bytes, max_blob_bytes

VARINT, I64, LEN, SGROUP, EGROUP, I32 = 0, 1, 2, 3, 4, 5
WIRE_NAMES = {VARINT: "varint", I64: "64-bit", LEN: "length-delimited", I32: "32-bit"}

# BlobProto field numbers (caffe.proto).
BLOB_NUM, BLOB_CHANNELS, BLOB_HEIGHT, BLOB_WIDTH = 1, 2, 3, 4
BLOB_DATA, BLOB_DIFF, BLOB_SHAPE, BLOB_DOUBLE_DATA, BLOB_DOUBLE_DIFF = 5, 6, 7, 8, 9
_PAYLOAD_DTYPES = {BLOB_DATA: "<f4", BLOB_DOUBLE_DATA: "<f8"}
_DIFF_FIELDS = frozenset({BLOB_DIFF, BLOB_DOUBLE_DIFF})


class WireError(Exception):
    """The bytes are not a well-formed protobuf message; ``offset`` is where it showed."""

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(message)
        self.message = message
        self.offset = offset


# ----------------------------------------------------------------------------- encoding


def encode_varint(value: int) -> bytes:
    """Base-128 varint of a non-negative int (negative int32/int64 as 10-byte two's
    complement, as protobuf writes them)."""
    if value < 0:
        value += 1 << 64
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def key(number: int, wire_type: int) -> bytes:
    return encode_varint((number << 3) | wire_type)


def len_header(number: int, length: int) -> bytes:
    """Key and length prefix of a length-delimited field of ``length`` bytes."""
    return key(number, LEN) + encode_varint(length)


# ----------------------------------------------------------------------------- reading


class Reader:
    """Sequential reads from a binary file object with the offset tracked and every read
    checked against the end of the enclosing message."""

    def __init__(self, f: BinaryIO, size: int) -> None:
        self.f = f
        self.size = size
        self.pos = 0

    @classmethod
    def of_bytes(cls, data: bytes) -> Reader:
        return cls(io.BytesIO(data), len(data))

    def need(self, n: int, end: int, what: str) -> None:
        if n < 0 or self.pos + n > end:
            left = end - self.pos
            where = "the file" if end == self.size else "its message"
            raise WireError(
                f"{what} needs {n} bytes but {where} has only {left} left "
                "(truncated or corrupt)",
                self.pos,
            )

    def varint(self, end: int) -> int:
        start = self.pos
        result = shift = 0
        while True:
            if self.pos >= end:
                raise WireError("a varint runs past the end (truncated or corrupt)", start)
            b = self.f.read(1)
            if not b:
                raise WireError("unexpected end of file inside a varint", start)
            self.pos += 1
            byte = b[0]
            result |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return result
            shift += 7
            if shift >= 70:
                raise WireError("a varint longer than 10 bytes (corrupt)", start)

    def read(self, n: int, end: int, what: str = "a field") -> bytes:
        self.need(n, end, what)
        data = self.f.read(n)
        if len(data) != n:
            raise WireError(f"unexpected end of file reading {what}", self.pos + len(data))
        self.pos += n
        return data

    def read_into(self, n: int, end: int, dtype: str, what: str) -> np.ndarray:
        """``n`` bytes straight into a new aligned array of ``dtype``."""
        self.need(n, end, what)
        item = np.dtype(dtype).itemsize
        if n % item:
            raise WireError(f"{what}: {n} bytes is not a whole number of values", self.pos)
        arr = np.empty(n // item, dtype=dtype)
        got = self.f.readinto(arr.data.cast("B"))  # type: ignore[attr-defined]
        if got != n:
            raise WireError(f"unexpected end of file reading {what}", self.pos + (got or 0))
        self.pos += n
        return arr

    def peek(self, n: int) -> bytes:
        """Up to ``n`` bytes from here, without moving (to name a layer in errors)."""
        data = self.f.read(n)
        self.f.seek(-len(data), io.SEEK_CUR)
        return data

    def skip(self, n: int, end: int, what: str) -> None:
        self.need(n, end, what)
        self.f.seek(n, io.SEEK_CUR)
        self.pos += n

    def tag(self, end: int) -> tuple[int, int]:
        start = self.pos
        k = self.varint(end)
        number, wire_type = k >> 3, k & 7
        if number == 0 or wire_type not in WIRE_NAMES:
            kind = "field number 0" if number == 0 else f"wire type {wire_type}"
            raise WireError(f"invalid field key ({kind}): not a protobuf message here", start)
        return number, wire_type

    def passthrough(self, number: int, wire_type: int, end: int) -> bytes:
        """The whole field (key included) as bytes, for fields the plan does not touch."""
        head = key(number, wire_type)
        if wire_type == VARINT:
            return head + encode_varint(self.varint(end))
        if wire_type == I64:
            return head + self.read(8, end)
        if wire_type == I32:
            return head + self.read(4, end)
        n = self.varint(end)
        return head + encode_varint(n) + self.read(n, end, f"field {number}")


# ----------------------------------------------------------------------------- blobs


@dataclass
class BlobRecord:
    """One BlobProto met while walking.

    ``header``: the blob's serialized fields other than data / double_data / diff /
    double_diff (its shape). ``values``: data (float32) or double_data (float64) when read
    as arrays; ``raw``: the whole serialized blob when read raw. ``where``: the field
    numbers leading to it below the top-level message, e.g. ``(7,)`` or ``(1, 50)``.
    """

    where: tuple[int, ...]
    header: bytes = b""
    values: np.ndarray | None = None
    raw: bytes | None = None
    n_diff: int = 0


Chunk = np.ndarray | bytes


def _join(chunks: list[Chunk], dtype: str) -> np.ndarray | None:
    if not chunks:
        return None
    parts = [c if isinstance(c, np.ndarray) else np.frombuffer(c, dtype=dtype) for c in chunks]
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


class BlobLimitError(WireError):
    """A blob larger than CAFFE2TORCH_MAX_BLOB_BYTES (the file may well be intact)."""


def _check_blob_bytes(n: int, pos: int) -> None:
    """A blob over CAFFE2TORCH_MAX_BLOB_BYTES is refused before it is read."""
    limit = max_blob_bytes()
    if n > limit:
        raise BlobLimitError(f"a blob of {describe_bytes(n)} is over the limit of "
                        f"{human_bytes(limit)} (set {MAX_BLOB_BYTES_ENV} to allow it)", pos)


def read_blob_fields(r: Reader, end: int, rec: BlobRecord) -> None:
    """Walk one BlobProto up to ``end``: header fields kept as bytes, data payloads into
    arrays (packed or not, in as many pieces as the writer used), diffs skipped."""
    header: list[bytes] = []
    chunks: dict[int, list[Chunk]] = {BLOB_DATA: [], BLOB_DOUBLE_DATA: []}
    while r.pos < end:
        number, wt = r.tag(end)
        if number in _PAYLOAD_DTYPES:
            dtype = _PAYLOAD_DTYPES[number]
            what = "blob data" if number == BLOB_DATA else "blob double_data"
            if wt == LEN:
                n = r.varint(end)
                _check_blob_bytes(n, r.pos)
                chunks[number].append(r.read_into(n, end, dtype, what))
                continue
            if wt == (I32 if number == BLOB_DATA else I64):  # one unpacked value
                chunks[number].append(r.read(4 if wt == I32 else 8, end, what))
                continue
        if number in _DIFF_FIELDS:
            if wt == LEN:
                n = r.varint(end)
                r.skip(n, end, "blob diff")
                rec.n_diff += n
                continue
            if wt in (I32, I64):
                r.skip(4 if wt == I32 else 8, end, "blob diff")
                rec.n_diff += 1
                continue
        header.append(r.passthrough(number, wt, end))
    rec.header = b"".join(header)
    # Blob::FromProto: double_data wins when it has any values
    doubles = _join(chunks[BLOB_DOUBLE_DATA], "<f8")
    rec.values = doubles if doubles is not None else _join(chunks[BLOB_DATA], "<f4")
    if rec.values is None:
        rec.values = np.empty(0, dtype="<f4")


# ----------------------------------------------------------------------------- messages

# A plan maps a field number to BLOB (a BlobProto) or to a nested plan (a message to walk).
BLOB = "blob"
Plan = dict  # dict[int, "str | Plan"]


@dataclass
class Walk:
    """How blobs are taken: ``arrays`` (data into numpy, header kept in the message) or
    ``raw`` (the whole blob as bytes, dropped from the message)."""

    mode: str = "arrays"
    blobs: list[BlobRecord] = field(default_factory=list)


def strip_message(r: Reader, end: int, plan: Plan, walk: Walk, where: tuple[int, ...] = ()
                  ) -> bytes:
    """The message up to ``end`` re-serialized without blob payloads; blobs go to
    ``walk.blobs`` in the order they appear."""
    out: list[bytes] = []
    while r.pos < end:
        number, wt = r.tag(end)
        kind = plan.get(number)
        if kind is None or wt != LEN:
            out.append(r.passthrough(number, wt, end))
            continue
        n = r.varint(end)
        sub_end = r.pos + n
        r.need(n, end, f"field {number}")
        path = (*where, number)
        if kind == BLOB:
            rec = BlobRecord(path)
            if walk.mode == "raw":
                _check_blob_bytes(n, r.pos)
                rec.raw = r.read(n, sub_end, "a blob")
            else:
                read_blob_fields(r, sub_end, rec)
                out.append(len_header(number, len(rec.header)) + rec.header)
            walk.blobs.append(rec)
        else:
            body = strip_message(r, sub_end, kind, walk, path)
            out.append(len_header(number, len(body)) + body)
    if r.pos != end:
        raise WireError("a field runs past the end of its message (corrupt)", r.pos)
    return b"".join(out)


def peek_string(body: bytes, number: int) -> str | None:
    """The first string field ``number`` of a serialized message (for error messages)."""
    r = Reader.of_bytes(body)
    try:
        while r.pos < r.size:
            n, wt = r.tag(r.size)
            if n == number and wt == LEN:
                return r.read(r.varint(r.size), r.size).decode("utf-8", "replace")
            r.passthrough(n, wt, r.size)
    except WireError:
        return None
    return None


# ----------------------------------------------------------------------------- writing


def blob_chunks(arr: np.ndarray, header: bytes) -> list[bytes | memoryview]:
    """A BlobProto as pieces to write one after the other (no copy of the values when the
    array is already contiguous little-endian float32 / float64): ``header`` (its shape
    fields), then the values packed in ``data`` (float64 arrays: ``double_data``)."""
    if arr.dtype == np.float64:
        number, values = BLOB_DOUBLE_DATA, np.ascontiguousarray(arr, dtype="<f8")
    else:
        number, values = BLOB_DATA, np.ascontiguousarray(arr, dtype="<f4")
    payload = values.reshape(-1).data.cast("B")
    before, after = split_before(header, number)  # field-number order, as protobuf writes
    pieces: list[bytes | memoryview] = [before]
    if len(payload):
        pieces += [len_header(number, len(payload)), payload]
    pieces.append(after)
    return pieces


def shape_header(shape: Iterable[int], legacy_4d: bool = False) -> bytes:
    """BlobProto shape fields: ``shape { dim... }`` (packed int64), or with ``legacy_4d``
    num / channels / height / width (shape padded with leading 1s, as Caffe's LegacyShape
    reads it)."""
    dims = [int(d) for d in shape]
    if legacy_4d:
        if len(dims) > 4:
            raise ValueError(f"a legacy 4-D blob cannot hold a {len(dims)}-D shape {dims}")
        dims = [1] * (4 - len(dims)) + dims
        return b"".join(key(n, VARINT) + encode_varint(d) for n, d in zip((1, 2, 3, 4), dims))
    packed = b"".join(encode_varint(d) for d in dims)
    inner = len_header(1, len(packed)) + packed if dims else b""
    return len_header(BLOB_SHAPE, len(inner)) + inner


def pieces_len(pieces: Iterable[bytes | memoryview]) -> int:
    return sum(len(p) for p in pieces)


def drop_fields(body: bytes, numbers: Iterable[int]) -> bytes:
    """A serialized message without the fields ``numbers`` (everything else unchanged)."""
    drop = frozenset(numbers)
    r = Reader.of_bytes(body)
    out: list[bytes] = []
    while r.pos < r.size:
        number, wt = r.tag(r.size)
        piece = r.passthrough(number, wt, r.size)
        if number not in drop:
            out.append(piece)
    return b"".join(out)


def split_before(body: bytes, number: int) -> tuple[bytes, bytes]:
    """Split a serialized message where fields numbered above ``number`` start, so that
    fields ``number`` can go between the halves in field-number order (the order protobuf
    itself writes, which makes our output byte-identical to a protobuf serialization)."""
    r = Reader.of_bytes(body)
    while r.pos < r.size:
        start = r.pos
        n, wt = r.tag(r.size)
        if n > number:
            return body[:start], body[start:]
        r.passthrough(n, wt, r.size)
    return body, b""
