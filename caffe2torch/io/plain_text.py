"""A fast path for protobuf text in its plain forms, which is how nearly every prototxt is
written: ``name: value`` with decimal numbers, enum names, true/false and quoted strings
without escapes, and ``name { ... }`` blocks. protobuf's own text parser is pure Python
and reads a ResNet-50 deploy net in about 14 ms; this reads it from io.positions' tokens,
which the linter has already made, in a few.

It reads what it is certain ``text_format.Parse`` reads the same way, to the same message,
and answers False at anything else (a field the schema lacks, a field given twice, escapes,
hex or octal numbers, ``inf``, ``f: [1, 2]``, ``< >`` blocks, adjacent tokens that the two
tokenizers would split differently...): the caller then parses with ``text_format``, which
reads or explains it. tests/io/test_plain_text.py compares the two over the corpus.
"""

from __future__ import annotations

import re
from typing import cast

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

from caffe2torch.io.positions import COL, KIND, LINE, TEXT, Token, tokenize

# What text_format's ParseInteger / ParseFloat read as Python's int() / float() do:
# decimal, no sign but '-', no leading zero (text_format reads 010 as octal, refuses 00.5).
_INT = re.compile(r"-?(?:0|[1-9][0-9]*)\Z")
_FLOAT = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?\Z")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_BOOLS = {"true": True, "t": True, "1": True, "True": True,
          "false": False, "f": False, "0": False, "False": False}  # text_format.ParseBool
_RANGES = {
    FieldDescriptor.TYPE_INT32: (-(1 << 31), (1 << 31) - 1),
    FieldDescriptor.TYPE_SINT32: (-(1 << 31), (1 << 31) - 1),
    FieldDescriptor.TYPE_SFIXED32: (-(1 << 31), (1 << 31) - 1),
    FieldDescriptor.TYPE_INT64: (-(1 << 63), (1 << 63) - 1),
    FieldDescriptor.TYPE_SINT64: (-(1 << 63), (1 << 63) - 1),
    FieldDescriptor.TYPE_SFIXED64: (-(1 << 63), (1 << 63) - 1),
    FieldDescriptor.TYPE_UINT32: (0, (1 << 32) - 1),
    FieldDescriptor.TYPE_FIXED32: (0, (1 << 32) - 1),
    FieldDescriptor.TYPE_UINT64: (0, (1 << 64) - 1),
    FieldDescriptor.TYPE_FIXED64: (0, (1 << 64) - 1),
}
_FLOATS = (FieldDescriptor.TYPE_FLOAT, FieldDescriptor.TYPE_DOUBLE)
_MAX_DEPTH = 64  # text_format refuses 100 nested messages


class _Unsure(Exception):
    """The text is not in the plain forms: text_format must read it."""


def parse_plain(text: str, message: Message) -> bool:
    """Fill ``message`` (empty) from ``text`` as ``text_format.Parse(text, message)`` would
    and return True; or return False, with ``message`` in an undefined state, when the
    text is not in the plain forms."""
    toks = tokenize(text)
    try:
        end = _fields(toks, 0, message, 1)
    except _Unsure:
        return False
    return end == len(toks)


def _separate(toks: list[Token], k: int) -> None:
    """Refuse a token glued to the next one (``a-1``, ``1.5.2``, ``"a""b"``): text_format's
    tokenizer may cut such text elsewhere than io.positions'."""
    if k + 1 < len(toks):
        a, b = toks[k], toks[k + 1]
        if (b[KIND] != "sym" and a[LINE] == b[LINE]
                and a[COL] + len(a[TEXT]) == b[COL]):
            raise _Unsure


def _fields(toks: list[Token], k: int, message: Message, depth: int) -> int:
    """Read fields from ``toks[k]`` up to the ``}`` closing this message (top level: the end);
    returns the index of that ``}`` (or of the end)."""
    if depth > _MAX_DEPTH:
        raise _Unsure
    by_name = cast(Descriptor, message.DESCRIPTOR).fields_by_name
    n = len(toks)
    while k < n:
        kind, name = toks[k][KIND], toks[k][TEXT]
        if kind == "sym" and name == "}":
            if depth == 1:
                raise _Unsure
            return k
        if kind != "ident" or not _NAME.match(name):
            raise _Unsure
        field = by_name.get(name)
        if field is None or field.containing_oneof is not None or field.is_extension:
            raise _Unsure
        _separate(toks, k)
        k += 1
        if field.cpp_type == FieldDescriptor.CPPTYPE_MESSAGE:
            sub_type = field.message_type
            if (field.type == FieldDescriptor.TYPE_GROUP or sub_type is None
                    or (sub_type.has_options and sub_type.GetOptions().map_entry)):
                raise _Unsure
            if k < n and toks[k][TEXT] == ":":
                k += 1
            if k >= n or toks[k][TEXT] != "{" or toks[k][KIND] != "sym":
                raise _Unsure
            if field.is_repeated:
                sub = getattr(message, name).add()
            else:
                if message.HasField(name):  # text_format.Parse refuses it
                    raise _Unsure
                sub = getattr(message, name)
                sub.SetInParent()
            k = _fields(toks, k + 1, sub, depth + 1)
            if k >= n:  # the file ends inside the block
                raise _Unsure
            k += 1
        else:
            if k >= n or toks[k][TEXT] != ":" or toks[k][KIND] != "sym":
                raise _Unsure
            k += 1
            if k >= n:
                raise _Unsure
            value = _scalar(field, toks[k])
            _separate(toks, k)
            if k + 1 < n and toks[k + 1][KIND] == "str":  # adjacent strings concatenate
                raise _Unsure
            if field.is_repeated:
                getattr(message, name).append(value)
            else:
                if not field.has_presence or message.HasField(name):
                    raise _Unsure
                setattr(message, name, value)
            k += 1
        if k < n and toks[k][KIND] == "sym" and toks[k][TEXT] in (",", ";"):
            k += 1  # text_format: an optional ',' or else ';' after a field
    return k


def _scalar(field: FieldDescriptor, tok: Token) -> object:
    """The value text_format would give ``field`` for this one token."""
    kind, text = tok[KIND], tok[TEXT]
    ftype = field.type
    if ftype == FieldDescriptor.TYPE_STRING:
        if (kind != "str" or len(text) < 2 or text[-1] != text[0] or "\\" in text
                or not text.isascii()):
            raise _Unsure
        return text[1:-1]
    if ftype == FieldDescriptor.TYPE_ENUM:
        enum = field.enum_type
        value = enum.values_by_name.get(text) if kind == "ident" and enum is not None else None
        if value is None:
            raise _Unsure
        return value.number
    if ftype == FieldDescriptor.TYPE_BOOL:
        if kind not in ("ident", "num") or text not in _BOOLS:
            raise _Unsure
        return _BOOLS[text]
    if ftype in _FLOATS:
        if kind != "num" or not _FLOAT.match(text):
            raise _Unsure
        return float(text)
    bounds = _RANGES.get(ftype)
    if bounds is None or kind != "num" or not _INT.match(text):
        raise _Unsure
    number = int(text)
    if not bounds[0] <= number <= bounds[1]:
        raise _Unsure
    return number
