"""Map a message of one Caffe schema into another by field name, on the wire.

A fork's ``caffe.proto`` and ours agree on most names but not on every number (each fork put
its new ``*_param`` at whatever number was free in its time; enum values moved too). Reading a
fork's file is therefore: parse with the fork's schema, then re-key every field to our number
for the same name. Working on the encoded bytes keeps this one implementation for text
(serialized after the fork's parser read it) and binary files (caffemodel, solverstate), and
keeps it fast: a sub-message whose layout is the same in both schemas (BlobProto with its
packed floats, almost always) is copied as one slice, never decoded.

Fields our schema lacks (or has with another type) are taken out and returned as typed
:class:`~caffe2torch.io.extra.ExtraField` values. The same translator, with the schemas
swapped, writes our messages with a fork's numbers (saving a caffemodel a fork reads back).
"""

from __future__ import annotations

import bisect
import contextlib
import io
import itertools
from dataclasses import dataclass, field
from typing import Any

from google.protobuf import descriptor as _descriptor
from google.protobuf import message_factory, text_format

from caffe2torch.errors import ParseError
from caffe2torch.io.extra import ExtraField

_FD = _descriptor.FieldDescriptor
VARINT, I64, LEN, I32 = 0, 1, 2, 5
_NUMERIC = {
    _FD.TYPE_DOUBLE: "f64", _FD.TYPE_FLOAT: "f32", _FD.TYPE_INT64: "v", _FD.TYPE_UINT64: "v",
    _FD.TYPE_INT32: "v", _FD.TYPE_FIXED64: "f64i", _FD.TYPE_FIXED32: "f32i",
    _FD.TYPE_BOOL: "v", _FD.TYPE_STRING: "s", _FD.TYPE_BYTES: "s", _FD.TYPE_UINT32: "v",
    _FD.TYPE_SFIXED32: "f32i", _FD.TYPE_SFIXED64: "f64i", _FD.TYPE_SINT32: "z",
    _FD.TYPE_SINT64: "z", _FD.TYPE_ENUM: "v",
}


class WireDamage(Exception):
    pass


def _varint(buf: memoryview, pos: int, end: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= end:
            raise WireDamage(f"a varint runs past the end at byte {pos}")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
        if shift >= 70:
            raise WireDamage(f"a varint longer than 10 bytes at byte {pos}")


@dataclass
class _Entry:
    src: _descriptor.FieldDescriptor
    dst: _descriptor.FieldDescriptor | None
    sub: _Plan | None = None
    enum_map: dict[int, int] | None = None  # src number -> dst number (same name)


@dataclass
class _Plan:
    src: _descriptor.Descriptor
    dst: _descriptor.Descriptor
    identical: bool = True
    fields: dict[int, _Entry] = field(default_factory=dict)


def _compatible(a: _descriptor.FieldDescriptor, b: _descriptor.FieldDescriptor) -> bool:
    """Whether ``a``'s encoding reads as ``b``: same kind of value; a singular field reads
    as one element of a repeated one (old forks' ``optional uint32 pad`` is BVLC's
    ``repeated uint32 pad``), and the other way the last element wins, as in protobuf."""
    if (a.message_type is None) != (b.message_type is None):
        return False
    if a.message_type is not None:
        return True
    return _NUMERIC.get(a.type) == _NUMERIC.get(b.type)


class Translator:
    """Re-keys messages of schema ``src_root`` into ``dst_root`` (plans memoized)."""

    def __init__(self, src_root: _descriptor.Descriptor, dst_root: _descriptor.Descriptor):
        self._plans: dict[tuple[str, str], _Plan] = {}
        self.root = self._plan(src_root, dst_root)

    def _plan(self, src: _descriptor.Descriptor, dst: _descriptor.Descriptor) -> _Plan:
        key = (src.full_name, dst.full_name)
        if key in self._plans:
            return self._plans[key]
        plan = _Plan(src, dst)
        self._plans[key] = plan  # a recursive message refers back to itself
        for fd in src.fields:
            other = dst.fields_by_name.get(fd.name)
            if other is None or not _compatible(fd, other):
                plan.fields[fd.number] = _Entry(fd, None)
                plan.identical = False
                continue
            entry = _Entry(fd, other)
            if (fd.number != other.number or fd.type != other.type
                    or fd.is_repeated != other.is_repeated):
                plan.identical = False
            if fd.message_type is not None and other.message_type is not None:
                entry.sub = self._plan(fd.message_type, other.message_type)
            elif fd.enum_type is not None and other.enum_type is not None:
                mapping = {}
                for v in fd.enum_type.values:
                    ov = other.enum_type.values_by_name.get(v.name)
                    if ov is not None:
                        mapping[v.number] = ov.number
                if any(mapping.get(v.number) != v.number for v in fd.enum_type.values):
                    entry.enum_map = mapping
                    plan.identical = False
            plan.fields[fd.number] = entry
        # identical only if every sub-message is too (fixed point for recursive messages)
        return plan

    def _settle(self) -> None:
        changed = True
        while changed:
            changed = False
            for plan in self._plans.values():
                if plan.identical and any(
                    e.sub is not None and not e.sub.identical for e in plan.fields.values()
                ):
                    plan.identical = False
                    changed = True

    @property
    def identical(self) -> bool:
        """Whether the two schemas encode the root message alike (nothing to re-key)."""
        self._settle()
        return self.root.identical

    def run(self, data: bytes) -> tuple[bytes, list[ExtraField]]:
        """``data`` (a root message in the source schema) re-keyed, and what was taken out."""
        if self.identical:
            return bytes(data), []
        pieces, extras = self.run_pieces(memoryview(data))
        return b"".join(pieces), extras

    def run_pieces(self, buf: memoryview) -> tuple[list[bytes | memoryview], list[ExtraField]]:
        """Like :meth:`run`, as pieces to be read in order (slices of ``buf`` where bytes
        pass unchanged: a blob's payload is never copied here)."""
        self._settle()
        extras: list[ExtraField] = []
        try:
            out = self._message(buf, 0, len(buf), self.root, (), None, extras, top=True)
        except WireDamage as e:
            raise ParseError(f"not a valid {self.root.src.name}: {e}") from None
        return out, extras


    def _message(self, buf: memoryview, pos: int, end: int, plan: _Plan,
                 path: tuple[str, ...], block: int | None, extras: list[ExtraField],
                 top: bool = False) -> list[bytes | memoryview]:
        # here, not at the top: io.wire loads numpy, which reading a prototxt never needs
        from caffe2torch.io.wire import encode_varint

        out: list[bytes | memoryview] = []
        n_blocks = 0
        while pos < end:
            start = pos
            key, pos = _varint(buf, pos, end)
            number, wt = key >> 3, key & 7
            vstart = pos
            if wt == VARINT:
                _, pos = _varint(buf, pos, end)
            elif wt == I64:
                pos += 8
            elif wt == I32:
                pos += 4
            elif wt == LEN:
                n, vstart = _varint(buf, pos, end)
                pos = vstart + n
            else:
                raise WireDamage(f"unsupported wire type {wt} at byte {start}")
            if pos > end:
                raise WireDamage(f"field {number} runs past its message at byte {start}")
            entry = plan.fields.get(number)
            if entry is None:
                continue  # not in the source schema either: protobuf kept it as unknown
            here = block
            if top and entry.src.name in ("layer", "layers") and entry.sub is not None:
                here = n_blocks
                n_blocks += 1
            if entry.dst is None:
                extras.append(self._extra(plan, entry, buf[start:pos], path, here))
                continue
            dst = entry.dst
            if entry.sub is not None and wt == LEN:
                if entry.sub.identical:
                    body: Any = buf[vstart:pos]
                    size = pos - vstart
                    parts = [body]
                else:
                    parts = self._message(buf, vstart, pos, entry.sub, (*path, dst.name), here,
                                          extras)
                    size = sum(len(p) for p in parts)
                out.append(encode_varint((dst.number << 3) | LEN) + encode_varint(size))
                out.extend(parts)
                continue
            if entry.enum_map is not None:
                values = []
                if wt == VARINT:
                    values = [_varint(buf, vstart, pos)[0]]
                elif wt == LEN:
                    p = vstart
                    while p < pos:
                        v, p = _varint(buf, p, pos)
                        values.append(v)
                for v in values:
                    mapped = entry.enum_map.get(v)
                    if mapped is None:
                        extras.append(self._extra(plan, entry, buf[start:pos], path, here,
                                                  kind="enum"))
                        continue
                    out.append(encode_varint(dst.number << 3 | VARINT) + encode_varint(mapped))
                continue
            if dst.number == number:
                out.append(buf[start:pos])
            else:
                out.append(encode_varint((dst.number << 3) | wt))
                out.append(buf[start + len(encode_varint(key)):pos])
        return out

    def _extra(self, plan: _Plan, entry: _Entry, raw: memoryview, path: tuple[str, ...],
               block: int | None, kind: str = "field") -> ExtraField:
        cls = message_factory.GetMessageClass(plan.src)
        msg = cls()
        try:
            msg.MergeFromString(bytes(raw))
            value = to_python(getattr(msg, entry.src.name), entry.src)
            text = text_format.MessageToString(msg, as_one_line=True).strip()
        except Exception:  # a value the source schema itself cannot decode
            value, text = bytes(raw), f"{entry.src.name}: <{len(raw)} bytes>"
        if entry.src.is_repeated and isinstance(value, list) and len(value) == 1:
            value = value[0]
        return ExtraField(path=(*path, entry.src.name), owner=plan.dst.name, value=value,
                          text=text, block=block, kind=kind, typed=True)


class PiecesIO(io.RawIOBase):
    """A read-only, seekable file over byte pieces (what :meth:`Translator.run_pieces`
    gives), so that the caffemodel reader streams the re-keyed file without joining it."""

    def __init__(self, pieces: list[bytes | memoryview], keep: object = None) -> None:
        super().__init__()
        self._pieces = [memoryview(p).cast("B") for p in pieces if len(p)]
        self._starts = list(itertools.accumulate((len(p) for p in self._pieces), initial=0))
        self.size = self._starts[-1]
        self._pos = 0
        self._keep = keep  # what the pieces point into (an mmap)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self.size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def readinto(self, b: Any) -> int:
        out = memoryview(b).cast("B")
        want = min(len(out), self.size - self._pos)
        done = 0
        k = bisect.bisect_right(self._starts, self._pos) - 1
        while done < want:
            piece = self._pieces[k]
            off = self._pos - self._starts[k]
            n = min(len(piece) - off, want - done)
            out[done:done + n] = piece[off:off + n]
            done += n
            self._pos += n
            k += 1
        return done

    def close(self) -> None:
        self._pieces = []
        keep, self._keep = self._keep, None
        close = getattr(keep, "close", None)
        if close is not None:
            with contextlib.suppress(BufferError):
                close()
        super().close()


def to_python(value: Any, fd: _descriptor.FieldDescriptor) -> Any:
    """A protobuf field value as plain Python: messages as dicts, enums by name."""
    if fd.is_repeated:
        return [_one(v, fd) for v in value]
    return _one(value, fd)


def _one(value: Any, fd: _descriptor.FieldDescriptor) -> Any:
    if fd.message_type is not None:
        return {f.name: to_python(v, f) for f, v in value.ListFields()}
    if fd.enum_type is not None:
        ev = fd.enum_type.values_by_number.get(value)
        return ev.name if ev is not None else value
    return value


def merge_repeated(extras: list[ExtraField]) -> list[ExtraField]:
    """Occurrences of one repeated field (same path, block) joined into one list value."""
    out: list[ExtraField] = []
    index: dict[tuple[tuple[str, ...], int | None, str], int] = {}
    for e in extras:
        key = (e.path, e.block, e.kind)
        if key in index:
            prev = out[index[key]]
            values = prev.value if isinstance(prev.value, list) else [prev.value]
            out[index[key]] = ExtraField(prev.path, prev.owner, [*values, e.value],
                                         f"{prev.text} {e.text}", prev.line, prev.col,
                                         prev.block, prev.kind, prev.typed,
                                         prev.values + e.values)
        else:
            index[key] = len(out)
            out.append(e)
    return out


__all__ = ["PiecesIO", "Translator", "merge_repeated", "to_python"]
