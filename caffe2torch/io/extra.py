"""Fields a schema does not know, kept instead of stopping the read.

A net written for a Caffe fork names fields that BVLC's schema (and ours) lacks:
``bn_param { bn_mode: INFERENCE }``, ``dense_image_data_param { ... }``, a V1 ``type: LOCAL``.
Caffe's own reader would stop at the first one; here :func:`take_out_unknown` walks the text
against the schema once, blanks each unknown field out (spaces, newlines kept, so every other
position stays right) and returns it as an :class:`ExtraField` with its value, text and
line:col. Reading, upgrading, ``info``, ``draw`` and the linter go on; a layer builder that
needs such a field reads it from ``BuildContext.extra`` or the build stops naming it.

The same :class:`ExtraField` carries the fields that only a user's fork schema has, when the
net is read with ``proto=`` (io.fork_schema): then ``typed`` is True and the value has the
type the fork declares.

A kept field also lists each value written in it as an :class:`ExtraValue` (its token as
written and its line:col), so that whoever gives the field a type (a layer plug-in that
declares its parameter block, layers.plugins) can convert it and point at a bad value.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from google.protobuf import descriptor as _descriptor
from google.protobuf import text_format

from caffe2torch.io.positions import KIND, TEXT, Token, tokenize

_FD = _descriptor.FieldDescriptor


@dataclass(frozen=True)
class ExtraValue:
    """One value written inside a kept field. ``path``: the field names inside it
    (``("factor",)`` in ``my_param { factor: 2 }``; ``()`` for a scalar kept field).
    ``token``: the value as written (adjacent strings joined by a space, as the parser
    concatenates them); ``kind``: the tokenizer's ``"str"``, ``"num"`` or ``"ident"``, or
    ``"block"`` for a nested block (its token is ``{``). ``line``/``col``: the value's
    place; ``key``: the line:col of its field name (None for a scalar kept field)."""

    path: tuple[str, ...]
    token: str
    kind: str
    line: int
    col: int
    key: tuple[int, int] | None = None


@dataclass(frozen=True)
class ExtraField:
    """A field that our schema does not have, kept beside the parsed message.

    ``path``: field names from the root message, e.g. ``("layer", "bn_param", "bn_mode")``.
    ``owner``: the message type that lacks it (``"BNParameter"``; ``"LayerParameter"`` for a
    whole unknown ``*_param`` block). ``value``: a bool, int, float, str (enum values by name),
    a dict for a block (repeated fields as lists), or a list. ``block``: index of the
    top-level ``layer``/``layers`` block it is written in (None outside layers).
    ``kind``: ``"field"``, or ``"enum"`` for a known field whose enum value is unknown.
    """

    path: tuple[str, ...]
    owner: str
    value: Any
    text: str
    line: int | None = None
    col: int | None = None
    block: int | None = None
    kind: str = "field"
    typed: bool = False
    values: tuple[ExtraValue, ...] = ()  # what the text writes in it (empty when typed)

    @property
    def name(self) -> str:
        return self.path[-1]

    @property
    def dotted(self) -> str:
        """The path inside the layer (or from the root outside layers): ``bn_param.bn_mode``."""
        inner = self.path[1:] if self.block is not None else self.path
        return ".".join(inner)

    def where(self) -> str:
        return f"line {self.line}" if self.line is not None else "the file"


# ----------------------------------------------------------------------------- values


def _scalar(tok: Token) -> Any:
    kind, txt = tok[KIND], tok[TEXT]
    if kind == "str":
        try:
            return text_format.Tokenizer([txt]).ConsumeString()
        except text_format.ParseError:
            return txt.strip("\"'")
    if kind == "num":
        body = txt.rstrip("fF") if not txt.lower().startswith("0x") else txt
        try:
            return int(body, 0)
        except ValueError:
            try:
                return float(body)
            except ValueError:
                return txt
    if txt in ("true", "True", "t"):
        return True
    if txt in ("false", "False", "f"):
        return False
    return txt  # an enum value by name (or inf/nan)


def _add(out: dict[str, Any], name: str, value: Any) -> None:
    if name in out:
        prev = out[name]
        out[name] = [*prev, value] if isinstance(prev, list) else [prev, value]
    else:
        out[name] = value


def _block_value(toks: list[Token], i: int, end: int) -> dict[str, Any]:
    """The fields of the block whose tokens are ``toks[i:end]`` as a dict."""
    out: dict[str, Any] = {}
    while i < end:
        if toks[i][KIND] != "ident":
            i += 1
            continue
        name = toks[i][TEXT]
        j = i + 1
        if j < end and toks[j][TEXT] == ":":
            j += 1
        if j >= end:
            break
        v = toks[j][TEXT]
        if v in ("{", "<"):
            close = _matching(toks, j)
            _add(out, name, _block_value(toks, j + 1, close))
            i = close + 1
        elif v == "[":
            k = j + 1
            items = []
            while k < end and toks[k][TEXT] != "]":
                if toks[k][TEXT] != ",":
                    items.append(_scalar(toks[k]))
                k += 1
            for item in items:
                _add(out, name, item)
            i = k + 1
        else:
            _add(out, name, _scalar(toks[j]))
            i = _value_end(toks, j) + 1
    return out


def _values(toks: list[Token], i: int, end: int, prefix: tuple[str, ...] = ()
            ) -> list[ExtraValue]:
    """The values written in the block whose tokens are ``toks[i:end]``, with positions
    (the same walk as :func:`_block_value`)."""
    out: list[ExtraValue] = []
    while i < end:
        if toks[i][KIND] != "ident":
            i += 1
            continue
        path, key = (*prefix, toks[i][TEXT]), (toks[i][2], toks[i][3])
        j = i + 1
        if j < end and toks[j][TEXT] == ":":
            j += 1
        if j >= end:
            break
        if toks[j][TEXT] in ("{", "<"):
            close = _matching(toks, j)
            out.append(ExtraValue(path, toks[j][TEXT], "block", toks[j][2], toks[j][3], key))
            out += _values(toks, j + 1, close, path)
            i = close + 1
        elif toks[j][TEXT] == "[":
            k = j + 1
            while k < end and toks[k][TEXT] != "]":
                if toks[k][TEXT] != ",":
                    out.append(_value(path, toks, k, k, key))
                k += 1
            i = k + 1
        else:
            last = _value_end(toks, j)
            out.append(_value(path, toks, j, last, key))
            i = last + 1
    return out


def _value(path: tuple[str, ...], toks: list[Token], first: int, last: int,
           key: tuple[int, int] | None = None) -> ExtraValue:
    tok = toks[first]
    text = " ".join(t[TEXT] for t in toks[first:last + 1])
    return ExtraValue(path, text, tok[KIND], tok[2], tok[3], key)


# ----------------------------------------------------------------------------- the walk


def _matching(toks: list[Token], j: int) -> int:
    """Index of the token closing the block opened at ``toks[j]`` (last token if none)."""
    depth = 0
    for k in range(j, len(toks)):
        t = toks[k][TEXT]
        if t in ("{", "<") and toks[k][KIND] == "sym":
            depth += 1
        elif t in ("}", ">") and toks[k][KIND] == "sym":
            depth -= 1
            if depth == 0:
                return k
    return len(toks) - 1


def _value_end(toks: list[Token], j: int) -> int:
    """Index of the last token of the value starting at ``toks[j]``."""
    t = toks[j][TEXT]
    if t in ("{", "<"):
        return _matching(toks, j)
    if t == "[":
        k = j
        while k < len(toks) - 1 and toks[k][TEXT] != "]":
            k += 1
        return k
    k = j
    if toks[j][KIND] == "str":  # adjacent strings concatenate
        while k + 1 < len(toks) and toks[k + 1][KIND] == "str":
            k += 1
    return k


class _Text:
    """Offsets of 1-based line:col in ``text``, and blanking that keeps positions."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.starts = [0]
        for n, ch in enumerate(text):
            if ch == "\n":
                self.starts.append(n + 1)
        self.cut: list[tuple[int, int]] = []

    def offset(self, line: int, col: int) -> int:
        return self.starts[line - 1] + col - 1

    def span(self, first: Token, last: Token) -> tuple[int, int]:
        return self.offset(first[2], first[3]), self.offset(last[2], last[3]) + len(last[TEXT])

    def blanked(self) -> str:
        if not self.cut:
            return self.text
        chars = list(self.text)
        for a, b in self.cut:
            for k in range(a, b):
                if chars[k] != "\n":
                    chars[k] = " "
        return "".join(chars)


def _enum_ok(fd: _descriptor.FieldDescriptor, tok: Token) -> bool:
    if tok[KIND] == "num":
        return True  # numbers are checked by the parser itself
    return fd.enum_type is not None and tok[TEXT] in fd.enum_type.values_by_name


Strict = Callable[[_descriptor.Descriptor, str, tuple[str, ...], str], bool]


def take_out_unknown(
    text: str, root: _descriptor.Descriptor, strict: Strict | None = None
) -> tuple[str, list[ExtraField]]:
    """``text`` with every field unknown to ``root``'s schema blanked out, and those fields.

    A field whose name the enclosing message lacks is taken out whole (with its value or
    block); so is a known enum field whose value the enum lacks (``kind="enum"``), unless
    ``strict(owner, name, path, kind)`` says the parser should report it (a V1 field in a V2
    block, a brace in the wrong place...). Everything else, syntax errors included, is left
    for the parser to report.
    """
    toks = tokenize(text)
    src = _Text(text)
    found: list[ExtraField] = []
    # (descriptor of the open block or None when unknown, field names from the root, block)
    stack: list[tuple[_descriptor.Descriptor | None, tuple[str, ...]]] = []
    cur: _descriptor.Descriptor | None = root
    path: tuple[str, ...] = ()
    block: int | None = None
    n_blocks = 0
    i, n = 0, len(toks)
    while i < n:
        tok = toks[i]
        txt = tok[TEXT]
        if tok[KIND] == "sym" and txt in ("}", ">"):
            if stack:
                cur, path = stack.pop()
                if not stack:
                    block = None
            i += 1
            continue
        if tok[KIND] == "sym" and txt == "[":  # an extension name: leave it to the parser
            while i < n and toks[i][TEXT] != "]":
                i += 1
            i += 1
            continue
        if tok[KIND] != "ident" or cur is None:
            i += 1
            continue
        j = i + 1
        if j < n and toks[j][TEXT] == ":":
            j += 1
        if j >= n:
            break
        fd = cur.fields_by_name.get(txt)
        opens = toks[j][TEXT] in ("{", "<") and toks[j][KIND] == "sym"
        end = _value_end(toks, j)
        if fd is None and strict is not None and strict(cur, txt, path, "field"):
            i = end + 1 if not opens else j + 1
            if opens:
                stack.append((cur, path))
                cur, path = None, (*path, txt)
            continue
        if fd is None:
            value = _block_value(toks, j + 1, end) if opens else (
                [_scalar(t) for t in toks[j + 1:end] if t[TEXT] != ","]
                if toks[j][TEXT] == "[" else _scalar(toks[j]))
            a, b = src.span(tok, toks[end])
            src.cut.append((a, b))
            written = _values(toks, j + 1, end) if opens else (
                [_value((), toks, k, k) for k in range(j + 1, end) if toks[k][TEXT] != ","]
                if toks[j][TEXT] == "[" else [_value((), toks, j, end)])
            found.append(ExtraField(
                path=(*path, txt), owner=cur.name, value=value,
                text=" ".join(text[a:b].split()), line=tok[2], col=tok[3], block=block,
                values=tuple(written),
            ))
            i = end + 1
            continue
        if opens and fd.message_type is not None:
            if not stack and txt in ("layer", "layers"):
                block = n_blocks
                n_blocks += 1
            stack.append((cur, path))
            cur, path = fd.message_type, (*path, txt)
            i = j + 1
            continue
        if fd.type == _FD.TYPE_ENUM and not opens:
            values = [t for t in toks[j:end + 1] if t[KIND] in ("ident", "num")]
            bad = [t for t in values if not _enum_ok(fd, t)]
            if bad and strict is not None and strict(cur, txt, path, "enum"):
                bad = []
            if bad:
                a, b = src.span(tok, toks[end])
                src.cut.append((a, b))
                value = bad[0][TEXT] if len(values) == 1 else [t[TEXT] for t in values]
                found.append(ExtraField(
                    path=(*path, txt), owner=cur.name, value=value,
                    text=" ".join(text[a:b].split()), line=tok[2], col=tok[3], block=block,
                    kind="enum",
                ))
        i = end + 1 if not opens else j + 1
        if opens:  # a scalar field given a block: the parser reports it
            stack.append((cur, path))
            cur, path = None, (*path, txt)
    return src.blanked(), found


def of_block(extras: list[ExtraField], block: int | None) -> list[ExtraField]:
    """The extra fields written inside top-level layer block ``block``."""
    return [e for e in extras if e.block == block and block is not None]


__all__ = ["ExtraField", "ExtraValue", "of_block", "take_out_unknown"]
