"""Reading Caffe text files (net and solver prototxt) the way Caffe users need.

Lenient where Caffe's own reader is: any newline style, ``layer: {``, single-quoted strings,
a non-repeated field given twice (the last one wins, as in C++ TextFormat), and bytes that
are not UTF-8 (old files have latin-1 comments): each such byte becomes one character, so
line and column numbers stay right. Strict where Caffe is: unknown fields and enum values
fail in Caffe; here a net's unknown fields and enum values are kept aside (io.extra) so that
a fork's net still reads, and everything else that Caffe rejects fails, with a
:class:`~caffe2torch.errors.ParseError` that names the file, the 1-based line and column, and
what to write instead.
"""

from __future__ import annotations

import codecs
import math
import os
import re
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, TypeVar, cast

from google.protobuf import descriptor as _descriptor
from google.protobuf import text_encoding, text_format
from google.protobuf.message import Message

from caffe2torch.errors import CaffeError, ParseError, UpgradeError
from caffe2torch.io import upgrade as _up
from caffe2torch.io.positions import SourceMap, enclosing_fields, scan, tokenize
from caffe2torch.limits import check_text
from caffe2torch.numerics import as_f32 as _f32
from caffe2torch.proto import caffe_pb2
from caffe2torch.proto.forks import FORK_FIELDS
from caffe2torch.suggest import close_names, did_you_mean

if TYPE_CHECKING:
    from caffe2torch.io.extra import ExtraField

# ----------------------------------------------------------------------------- bytes -> text


def _bytes_as_latin1(err: UnicodeError) -> tuple[str, int]:
    if not isinstance(err, UnicodeDecodeError):
        raise err
    bad = err.object[err.start:err.end]
    return bytes(bad).decode("latin-1"), err.end


codecs.register_error("caffe2torch-latin1", _bytes_as_latin1)


def decode(data: bytes) -> str:
    """UTF-8 text of ``data`` (a UTF-8 BOM dropped); a byte that is not part of valid UTF-8
    becomes the latin-1 character of the same value, one character per byte."""
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8):]
    return data.decode("utf-8", errors="caffe2torch-latin1")


def normalize_newlines(text: str) -> str:
    """CRLF and lone CR -> LF (protobuf's Python tokenizer only splits lines on LF)."""
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text


def read_text(path: str | os.PathLike[str]) -> str:
    """The decoded, newline-normalised text of a file; I/O problems -> ParseError."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise ParseError(
            f"cannot read the file: {e.strerror or e}", path=os.fspath(path)
        ) from None
    if _binary(data):
        raise ParseError(
            "this is a binary file (a .caffemodel weights file?), not prototxt text",
            path=os.fspath(path),
            hint="pass a weights file with --weights (Caffe's -weights) and give the net "
            "prototxt here; `caffe2torch info FILE` lists what a caffemodel holds",
        )
    return normalize_newlines(decode(data))


# bytes no prototxt holds (tab, newline, vertical tab, form feed and carriage return are
# text); a binary protobuf starts with a field tag such as 0x0a and has such bytes early
_BINARY_BYTES = frozenset(range(0, 9)) | frozenset(range(14, 32))


def _binary(data: bytes) -> bool:
    return any(b in _BINARY_BYTES for b in data[:4096])


# ----------------------------------------------------------------------------- parsing


def _descriptor_of(message: Message) -> _descriptor.Descriptor:
    # protobuf's stubs say the Python or the upb Descriptor class; both have this API
    return cast(_descriptor.Descriptor, message.DESCRIPTOR)


_M = TypeVar("_M", bound=Message)


def parse_text(text: str, message: _M, *, path: str | None = None) -> _M:
    """Merge ``text`` into ``message`` (cleared first) with protobuf's text format, as Caffe's
    ReadProtoFromTextFile does; errors -> ParseError with a readable message."""
    text = normalize_newlines(text)
    message.Clear()
    try:
        text_format.Merge(text, message)
    except text_format.ParseError as e:
        raise explain_parse_error(e, text, _descriptor_of(message), path).error from None
    return message


def parse_text_keeping_unknown(
    text: str, message: _M, *, path: str | None = None
) -> tuple[_M, list[ExtraField]]:
    """Like :func:`parse_text`, but fields (and enum values) the schema lacks are kept aside
    instead of failing: the message and those fields. Any other error still fails."""
    text = normalize_newlines(text)
    message.Clear()
    try:
        text_format.Merge(text, message)
        return message, []
    except text_format.ParseError as e:
        raw = _LOC_RE.sub("", str(e), count=1)
        if "has no field named" not in raw and "has no value named" not in raw:
            raise explain_parse_error(e, text, _descriptor_of(message), path).error from None
    # what a file without unknown fields never needs
    from caffe2torch.io.extra import take_out_unknown
    from caffe2torch.io.translate import merge_repeated

    blanked, extras = take_out_unknown(text, _descriptor_of(message), _caffe_would_explain)
    extras = merge_repeated(extras)  # a repeated field written N times: one list value
    message.Clear()
    try:
        text_format.Merge(blanked, message)
    except text_format.ParseError as e:
        raise explain_parse_error(e, blanked, _descriptor_of(message), path).error from None
    return message, extras


_FORK_LAYER_FIELDS = frozenset(FORK_FIELDS.get("LayerParameter", {}))


def _caffe_would_explain(
    owner: _descriptor.Descriptor, name: str, path: tuple[str, ...], kind: str
) -> bool:
    """Whether an unknown name is a mistake we can explain rather than a fork's field: a
    field of another Caffe dialect or message (V1 ``blobs_lr`` in a V2 block, a layer's field
    at the top level after a brace too many, a solver file read as a net), a block opened
    inside a layer (a missing brace), or a bad value in an include/exclude rule or phase,
    which would silently change which layers a phase has."""
    layer_fields = caffe_pb2.LayerParameter.DESCRIPTOR.fields_by_name
    if kind == "enum":
        return not (path == ("layers",) and name == "type") and not any(
            p.endswith("_param") for p in path)
    if name in ("layer", "layers") and path:
        return True
    if owner.name == "LayerParameter" and name in _V1_FIELD_FIX:
        return True
    if owner.name == "V1LayerParameter" and name in layer_fields:
        return name not in _FORK_LAYER_FIELDS  # a fork's V1 block may have its own params
    if owner.name == "NetParameter" and (
            name in layer_fields or name in caffe_pb2.SolverParameter.DESCRIPTOR.fields_by_name):
        return True
    return owner.name == "SolverParameter" and (
        name in caffe_pb2.NetParameter.DESCRIPTOR.fields_by_name)


_LOC_RE = re.compile(r"^\d+(?::\d+)? : ")
# protobuf's text-format errors, classified once (io and the linter both use the kinds).
_KINDS = (
    ("no-field", re.compile(r'^Message type "([\w.]+)" has no field named "(.*)"')),
    ("no-enum", re.compile(r'^Enum type "([\w.]+)" has no value named "?([^"]*?)"?\.?$')),
    ("expected-string", re.compile(r"^Expected string but found: '(.*)'")),
    ("multiple", re.compile(r'^Message type "([\w.]+)" should not have multiple "(\w+)" fields')),
    ("oneof", re.compile(r'^Field "([\w.]+)" is specified along with field "([\w.]+)"')),
)


@dataclass(frozen=True)
class ParseProblem:
    """One protobuf text-format error, classified: ``raw`` is protobuf's text without its
    place, ``kind`` the rule it breaks (``no-field``, ``no-enum``, ``expected-string``,
    ``multiple``, ``oneof``; ``other``), ``names`` what the rule names (message type and
    field, enum type and value, the value found), ``error`` the error re-phrased for a Caffe
    user (what the readers raise and the linter shows)."""

    raw: str
    kind: str
    names: tuple[str, ...]
    error: ParseError


def _raw_text(e: text_format.ParseError, text: str) -> str:
    """protobuf's message without its ``line:col : 'source line': `` prefix."""
    raw = _LOC_RE.sub("", str(e), count=1)
    line = e.GetLine()
    lines = text.split("\n")
    if line is not None and 1 <= line <= len(lines):
        prefix = f"'{lines[line - 1]}': "
        if raw.startswith(prefix):
            raw = raw[len(prefix):]
    return raw


def _classify(raw: str) -> tuple[str, tuple[str, ...]]:
    for kind, pattern in _KINDS:
        m = pattern.match(raw)
        if m:
            return kind, m.groups()
    return "other", ()


def explain_parse_error(
    e: text_format.ParseError, text: str, root: _descriptor.Descriptor, path: str | None
) -> ParseProblem:
    """The one explanation of a text-format error (readers and linter)."""
    raw = _raw_text(e, text)
    kind, names = _classify(raw)
    return ParseProblem(raw, kind, names, _explain(e, text, root, path, raw, kind, names))

# V1-only fields of a layer and how V2 writes them.
_V1_FIELD_FIX = {
    "blobs_lr": "write one `param { lr_mult: X }` per blob instead of `blobs_lr: X`",
    "weight_decay": "write `param { decay_mult: X }` (one per blob) instead of `weight_decay: X`",
    "blob_share_mode": "write `param { share_mode: STRICT }` (one per blob) instead of "
    "`blob_share_mode`",
    "layer": "a V0 `layer { ... }` belongs inside `layers { ... }`; or run "
    "`caffe2torch upgrade FILE`",
}


def _short(full_name: str) -> str:
    return full_name.removeprefix("caffe.")


def _resolve(root: _descriptor.Descriptor, names: list[str]) -> _descriptor.Descriptor | None:
    """The message type of the block at the end of ``names`` (field names from the root)."""
    d: _descriptor.Descriptor | None = root
    for name in names:
        if d is None:
            return None
        fd = d.fields_by_name.get(name)
        d = fd.message_type if fd is not None else None
    return d


def _field_before(text: str, line: int, col: int) -> str | None:
    """The name of the field whose value is at (or just before) ``line:col``."""
    toks = [t for t in tokenize(text.split("\n")[line - 1]) if t[3] <= col]
    for k in range(len(toks) - 1, -1, -1):
        if toks[k][0] == "ident" and k + 1 < len(toks) and toks[k + 1][1] == ":":
            return toks[k][1]
    return None


# a line of a data layer's list file: an image path with its label(s) (ImageData,
# WindowData's images, a Siamese net's train1.txt) or an HDF5 file's path (HDF5Data)
_LIST_LINE = re.compile(r"^\S+(\s+-?\d+(\.\d+)?)+\s*$"
                        r"|^\S+\.(h5|hdf5|jpe?g|png|bmp|p[gp]m|tiff?)\s*$", re.IGNORECASE)


def _list_file_kind(text: str) -> str | None:
    """Which data layer's list ``text`` looks like (its first lines are all list lines)."""
    lines = [ln.strip() for ln in text.split("\n")
             if ln.strip() and not ln.lstrip().startswith("#")][:5]
    if not lines or not all(_LIST_LINE.match(ln) and not ln.split()[0].endswith(":")
                            for ln in lines):  # `max_iter: 100` is prototxt
        return None
    return "HDF5Data" if lines[0].lower().endswith((".h5", ".hdf5")) else "ImageData"


def refuse_file_list(text: str, path: str | None) -> None:
    """A data layer's list file given where a net or solver prototxt belongs: say so (some
    such lists would even parse, as unknown fields kept aside, into an empty net)."""
    data_layer = _list_file_kind(text)
    if data_layer is not None:
        param = "hdf5_data_param" if data_layer == "HDF5Data" else "image_data_param"
        raise ParseError(
            f"this looks like the file list of a data layer ({data_layer}), not prototxt",
            path=path, line=1,
            hint=f"give the net's prototxt here; the net names this list in its {data_layer} "
            f"layer ({param} {{ source: ... }})")


def _explain(
    e: text_format.ParseError, text: str, root: _descriptor.Descriptor, path: str | None,
    raw: str, kind: str, names: tuple[str, ...],
) -> ParseError:
    """Re-phrase one of protobuf's text-format errors for a Caffe user."""
    line, col = e.GetLine(), e.GetColumn()
    message, hint = raw.rstrip("."), None
    fname: str | None
    ctx = enclosing_fields(text, line, col) if line and col else []
    in_layer = ctx[:1] == ["layer"] and root.name == "NetParameter"

    layer_fields = caffe_pb2.LayerParameter.DESCRIPTOR.fields_by_name
    solver_fields = caffe_pb2.SolverParameter.DESCRIPTOR.fields_by_name
    net_fields = caffe_pb2.NetParameter.DESCRIPTOR.fields_by_name
    if kind == "no-field":
        mtype, fname = _short(names[0]), names[1]
        message = f'{mtype} has no field named "{fname}"'
        owner = _resolve(root, ctx)
        if line and fname in ("layer", "layers") and ctx[:1] in (["layer"], ["layers"]):
            outer = next((b for b in scan(text).blocks
                          if b.start_line <= line <= b.end_line), None)
            opened = f" opened at line {outer.start_line}" if outer is not None else ""
            return ParseError(
                f"a `{fname} {{` block starts inside the `{ctx[0]}` block{opened}",
                path=path, line=line, col=col,
                hint=f"is a `}}` missing before line {line}?",
            )
        if mtype == "LayerParameter" and fname in _V1_FIELD_FIX:
            message = (
                f'"{fname}" is a V1 field: `layer {{ }}` (V2, LayerParameter) has no field '
                f'named "{fname}"'
            )
            hint = _V1_FIELD_FIX[fname]
        elif mtype == "V1LayerParameter" and fname in layer_fields:
            message = (
                f'"{fname}" exists only in V2 `layer {{ }}` blocks; `layers {{ }}` (V1) has no '
                f'field named "{fname}"'
            )
            hint = "upgrade the file to V2 (`caffe2torch upgrade FILE`), then use it there"
        elif mtype == "NetParameter" and fname in layer_fields:
            hint = (
                f'"{fname}" belongs in a `layer {{ }}` block: was the block before line {line} '
                "closed too early (one `}` too many)?"
            )
        elif mtype == "NetParameter" and fname in solver_fields:
            hint = "this looks like a solver file: read it as a solver (-solver / read_solver)"
        elif mtype == "SolverParameter" and fname in net_fields:
            hint = "this looks like a net file: read it as a net (-model / read_net)"
        else:
            known = list(owner.fields_by_name) if owner is not None else []
            hint = did_you_mean(close_names(fname, known, cutoff=0.75))
            if hint is None:
                hint = (
                    f'"{fname}" is not in BVLC Caffe\'s {mtype}; if it comes from a Caffe fork, '
                    "the net needs that fork's layers"
                )
    elif kind == "no-enum":
        etype, value = names
        message = f'"{value}" is not a value of {_short(etype)}'
        if etype == "caffe.V1LayerParameter.LayerType":
            v1_names = {v: k for k, v in _up.V1_TYPES.items()}
            if value in v1_names:
                hint = (
                    f"`layers {{ }}` (V1) blocks take enum types (`type: {v1_names[value]}`); "
                    f'`type: "{value}"` is the V2 spelling, for `layer {{ }}` blocks'
                )
        if hint is None:
            desc = _enum_by_name(root, etype)
            if desc is not None:
                close = close_names(value, desc.values_by_name)
                hint = did_you_mean(close, quote="") or (
                    "expected one of " + ", ".join(desc.values_by_name))
    elif kind == "expected-string":
        value = names[0]
        fname = _field_before(text, line, col) if line and col else None
        message = f"expected a quoted string, found {value}"
        if in_layer and len(ctx) == 1 and fname == "type" and value in _up.V1_TYPES:
            message = f"`type: {value}` is a V1 enum type, but this is a V2 `layer {{ }}` block"
            hint = (f'write `type: "{_up.V1_TYPES[value]}"`, or make the block a V1 `layers {{ }}` '
                    "and run `caffe2torch upgrade FILE`")
        else:
            hint = f'write "{value}"'
    elif raw.startswith('Expected "{"'):
        fname = _field_before(text, line, col) if line and col else None
        if in_layer and len(ctx) == 1 and fname == "param":
            message = '`param: "NAME"` is the V1 form; in a V2 `layer { }` param is a block'
            hint = 'write `param { name: "NAME" }`'
        elif fname is not None:
            message = f'"{fname}" is a message: it takes a block, not a value'
            hint = f"write `{fname} {{ ... }}`"
    elif raw.startswith('Expected "}"') or raw.startswith('Expected ">"'):
        src = scan(text)
        open_blocks = [b for b in src.blocks if not b.closed]
        if open_blocks:
            b = open_blocks[0]
            what = f" ({b.name!r})" if b.name else ""
            return ParseError(
                f"the `{b.kind} {{` block{what} opened here is never closed",
                path=path, line=b.start_line, col=b.start_col,
                hint=f"add the missing `}}` (the file ends at line {line})",
            )
        message = "a block is not closed: `}` expected"
    elif raw.startswith("Expected identifier or number, got }"):
        message = "unexpected `}`: no block is open here"
        hint = "remove it (one `}` too many?)"
    elif raw.startswith("Couldn't parse integer") or raw.startswith("Value out of range"):
        fname = _field_before(text, line, col) if line and col else None
        if fname is not None:
            owner = _resolve(root, ctx)
            fd = owner.fields_by_name.get(fname) if owner is not None else None
            kind = _TYPE_NAMES.get(fd.type, "integer") if fd is not None else "integer"
            value = message.rsplit(": ", 1)[-1]
            word = _word_at(text, line, col, path) if line and col else None
            if word and word.startswith(value):
                value = word  # protobuf names one symbol: `$` of `$TARGET_HEIGHT$`
            message = f'"{fname}" takes a {kind}, not {value}'
            if _PLACEHOLDER.fullmatch(value):
                hint = ("this file is a template: its repository's script replaces "
                        f"{value} by a value before Caffe reads it; fill it in")
    return ParseError(message, path=path, line=line, col=col, hint=hint)


# a template's field for a script to fill in: FlowNet 2.0's $TARGET_WIDTH$, DeepLab's
# ${NUM_LABELS}, a shell's $NAME
_PLACEHOLDER = re.compile(r"\$\w+\$|\$\{\w+\}|\$\w+")


def _word_at(text: str, line: int, col: int, path: str | None = None) -> str | None:
    """The text at ``line:col`` up to the next blank, `}` or `#` (a ``${NAME}`` whole).
    The file itself is read when there is one: the reader keeps a ``{NAME}`` aside as an
    unknown block, so the text it parsed shows only ``${`` there."""
    text = _file_text(path) or text
    lines = text.split("\n")
    if not 0 < line <= len(lines):
        return None
    match = re.match(r"\$\{\w*\}|[^\s}#]+", lines[line - 1][col - 1:])
    return match.group(0) if match else None


def _file_text(path: str | None) -> str | None:
    if path is None or not os.path.isfile(path):
        return None
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return None


_FD = _descriptor.FieldDescriptor
_TYPE_NAMES = {
    _FD.TYPE_INT32: "32-bit integer", _FD.TYPE_INT64: "64-bit integer",
    _FD.TYPE_UINT32: "non-negative 32-bit integer", _FD.TYPE_UINT64: "non-negative integer",
    _FD.TYPE_FLOAT: "number", _FD.TYPE_DOUBLE: "number", _FD.TYPE_BOOL: "true/false",
}


def _enum_by_name(root: _descriptor.Descriptor, full_name: str):
    try:
        return root.file.pool.FindEnumTypeByName(full_name)
    except KeyError:
        return None


# ----------------------------------------------------------------------------- nets

def net_from_text(
    text: str, path: str | None, proto: Any = None
) -> tuple[caffe_pb2.NetParameter, SourceMap, _up.UpgradeReport]:
    text = normalize_newlines(text)
    check_text(text, path)
    refuse_file_list(text, path)
    source = scan(text, path)
    if {"layer", "layers"} <= source.kinds():
        raise _up.mixed_error(source, path)
    net, extras = _parse_with(text, "NetParameter", path, proto, source)
    report = _up.upgrade_net_report(net, source=source, path=path)
    if extras:
        source.extras = _apply_v1_extras(report, extras)
    return net, source, report


def _parse_with(
    text: str, name: str, path: str | None, proto: Any, source: SourceMap | None
) -> tuple[Any, list[ExtraField]]:
    """Parse ``text`` as message ``name`` of our schema, or (``proto``) of the fork's schema
    mapped into ours by field name; the fields kept aside, located."""
    ours = getattr(caffe_pb2, name)()
    if proto is None:
        return parse_text_keeping_unknown(text, ours, path=path)
    from caffe2torch.io.fork_schema import as_schema  # compiles a .proto: only when given
    from caffe2torch.io.translate import merge_repeated

    schema = as_schema(proto)
    assert schema is not None
    # Text names fields, so a file that only uses fields our schema has reads the same
    # through the fork's schema and the mapping by name: parse it as ours (fast path).
    try:
        text_format.Merge(text, ours)
        return ours, []
    except text_format.ParseError:
        ours.Clear()
    fork_msg, unknown = parse_text_keeping_unknown(text, schema.need(name)(), path=path)
    data, typed = schema.to_ours(name, fork_msg.SerializeToString(), path)
    ours.ParseFromString(data)
    return ours, unknown + _locate(merge_repeated(typed), source or scan(text, path))


def _locate(extras: list[ExtraField], source: SourceMap) -> list[ExtraField]:
    """Line:col of fields found by the translator (which works on bytes)."""
    out = []
    for e in extras:
        pos = None
        if e.block is not None and 0 <= e.block < len(source.blocks):
            pos = source.blocks[e.block].field(e.dotted)
        elif e.block is None:
            pos = source.top(e.dotted)
        out.append(replace(e, line=pos[0], col=pos[1]) if pos else e)
    return out


def _apply_v1_extras(report: _up.UpgradeReport, extras: list[ExtraField]) -> list[ExtraField]:
    """What V1 blocks kept aside, put where the V2 net has a place for it: a V1 ``type:
    LOCAL`` that the enum lacks becomes the V2 type ``"LOCAL"`` (an unknown layer type that
    a plug-in or an alias can build); a fork's parameter block written in a V1 block that V2
    ``layer`` has (DeepLab's ``interp_param``) moves into the upgraded layer. Returns the
    fields still kept aside."""
    by_block: dict[int | None, list[ExtraField]] = {}
    for e in extras:
        if e.path[:1] == ("layers",) and len(e.path) == 2:
            by_block.setdefault(e.block, []).append(e)
    if not by_block:
        return extras
    placed: set[int] = set()
    layer_fields = caffe_pb2.LayerParameter.DESCRIPTOR.fields_by_name
    for i, origin in enumerate(report.origin):
        layer = report.net.layer[i]
        for e in by_block.get(origin, []):
            if e.kind == "enum" and e.name == "type" and isinstance(e.value, str):
                if not layer.type:
                    layer.type = e.value
                continue  # kept too: the linter and the builder's hint name it
            fd = layer_fields.get(e.name)
            if e.kind == "field" and fd is not None and fd.message_type is not None:
                try:
                    text_format.Merge(e.text, layer)
                except text_format.ParseError:
                    continue
                placed.add(id(e))
    return [e for e in extras if id(e) not in placed]


def read_net_text(
    text: str, path: str | None = None, proto: Any = None
) -> caffe_pb2.NetParameter:
    """A net prototxt's text -> NetParameter, upgraded to V2. ``proto``: the caffe.proto of
    the Caffe fork the net was written for (a path, or an io.fork_schema.ForkSchema)."""
    return net_from_text(text, path, proto)[2].net


def read_net(path: str | os.PathLike[str], proto: Any = None) -> caffe_pb2.NetParameter:
    """A net prototxt file -> NetParameter, upgraded to V2 (ReadNetParamsFromTextFileOrDie).
    ``proto``: the fork's caffe.proto (fields only it has are kept aside, see
    :func:`read_net_with_positions`)."""
    p = os.fspath(path)
    return read_net_text(read_text(p), p, proto)


def read_net_with_positions(
    path: str | os.PathLike[str], proto: Any = None,
) -> tuple[caffe_pb2.NetParameter, SourceMap]:
    """The upgraded net and a SourceMap whose ``layer(i)`` is where upgraded layer ``i`` is
    written (an Input layer made from ``input:`` fields points at the first ``input:``).
    ``SourceMap.extras`` holds the fields our schema lacks (io.extra.ExtraField): unknown
    ones kept with their text and values (a plug-in type's parameter block among them), or
    the fork's own, typed, when ``proto`` is given; ``SourceMap.extras_of(i)`` gives those
    of layer ``i`` (what its builder gets as ``BuildContext.extra``)."""
    p = os.fspath(path)
    return read_net_text_with_positions(read_text(p), p, proto)


def read_net_text_with_positions(
    text: str, path: str | None = None, proto: Any = None,
) -> tuple[caffe_pb2.NetParameter, SourceMap]:
    """:func:`read_net_with_positions` for a net given as text (``path``: for messages)."""
    _, source, report = net_from_text(text, path, proto)
    return report.net, source.remap(report.origin)


# ----------------------------------------------------------------------------- solvers


def read_solver_text(
    text: str, path: str | None = None, proto: Any = None
) -> caffe_pb2.SolverParameter:
    """A solver prototxt's text -> SolverParameter, upgraded (``solver_type`` -> ``type``;
    inline V0/V1 nets upgraded too, which Caffe itself does not do). ``proto``: the fork's
    caffe.proto (its solver fields are mapped into ours by name)."""
    text = normalize_newlines(text)
    check_text(text, path)
    refuse_file_list(text, path)
    if proto is None:
        solver = parse_text(text, caffe_pb2.SolverParameter(), path=path)
    else:
        solver, _ = _parse_with(text, "SolverParameter", path, proto, None)
    source = scan(text, path) if solver.HasField("solver_type") else None
    return _up.upgrade_solver(solver, path=path, source=source)


def read_solver(path: str | os.PathLike[str], proto: Any = None) -> caffe_pb2.SolverParameter:
    """A solver prototxt file -> SolverParameter, upgraded (see :func:`read_solver_text`).
    ``snapshot_prefix`` is left as written; :func:`caffe2torch.io.upgrade.snapshot_prefix`
    applies Caffe's default."""
    p = os.fspath(path)
    return read_solver_text(read_text(p), p, proto)


# ----------------------------------------------------------------------------- text out

_SOLVER_ONLY = frozenset(caffe_pb2.SolverParameter.DESCRIPTOR.fields_by_name) - frozenset(
    caffe_pb2.NetParameter.DESCRIPTOR.fields_by_name
)


def is_solver_text(text: str) -> bool:
    """Whether ``text`` is a solver (it has a top-level field only SolverParameter has)."""
    check_text(text)  # scanning a million layers would take minutes
    return is_solver_source(scan(text))


def is_solver_source(source: SourceMap) -> bool:
    """:func:`is_solver_text` of a text already scanned."""
    return any(name in _SOLVER_ONLY for name in source.top_fields)


def net_to_text(msg: Message) -> str:
    """Protobuf text format exactly as Caffe's WriteProtoToTextFile (C++ TextFormat::Print)
    writes it: 2-space indent, fields in field-number order, floats as C++ SimpleFtoa prints
    them (``1``, ``0.0001``, ``1e-05``), strings C-escaped (octal for non-ASCII bytes)."""
    out: list[str] = []
    _print_message(msg, "", out)
    return "".join(out)


def _ftoa(v: float) -> str:
    """C++ SimpleFtoa: %.6g if it reads back as the same float32, else %.9g."""
    if math.isnan(v) or math.isinf(v):
        return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf")
    s = f"{v:.6g}"
    return s if _f32(float(s)) == _f32(v) else f"{v:.9g}"


def _dtoa(v: float) -> str:
    """C++ SimpleDtoa: %.15g if it reads back as the same double, else %.17g."""
    if math.isnan(v) or math.isinf(v):
        return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf")
    s = f"{v:.15g}"
    return s if float(s) == v else f"{v:.17g}"


def _scalar(fd: _descriptor.FieldDescriptor, v: object) -> str:
    t = fd.type
    if t == _FD.TYPE_STRING:
        return '"' + text_encoding.CEscape(str(v).encode("utf-8"), False) + '"'
    if t == _FD.TYPE_BYTES:
        return '"' + text_encoding.CEscape(cast(bytes, v), False) + '"'
    if t == _FD.TYPE_FLOAT:
        return _ftoa(cast(float, v))
    if t == _FD.TYPE_DOUBLE:
        return _dtoa(cast(float, v))
    if t == _FD.TYPE_BOOL:
        return "true" if v else "false"
    if t == _FD.TYPE_ENUM and fd.enum_type is not None:
        ev = fd.enum_type.values_by_number.get(cast(int, v))
        return ev.name if ev is not None else str(v)
    return str(v)


def _print_message(msg: Message, indent: str, out: list[str]) -> None:
    for fd, value in msg.ListFields():
        name = f"[{fd.full_name}]" if fd.is_extension else fd.name
        values = value if fd.is_repeated else [value]
        for v in values:
            if fd.type in (_FD.TYPE_MESSAGE, _FD.TYPE_GROUP):
                out.append(f"{indent}{name} {{\n")
                _print_message(v, indent + "  ", out)
                out.append(f"{indent}}}\n")
            else:
                out.append(f"{indent}{name}: {_scalar(fd, v)}\n")


def upgrade_text(text: str, path: str | None = None) -> str:
    """V0/V1 net or old solver text -> current text (what upgrade_net_proto_text /
    upgrade_solver_proto_text write). Text already current comes back re-printed."""
    text = normalize_newlines(text)
    check_text(text, path)
    if is_solver_text(text):
        return net_to_text(read_solver_text(text, path))
    return net_to_text(read_net_text(text, path))


__all__ = [
    "CaffeError",
    "ParseError",
    "UpgradeError",
    "decode",
    "is_solver_source",
    "is_solver_text",
    "net_to_text",
    "normalize_newlines",
    "parse_text",
    "read_net",
    "read_net_text",
    "read_net_text_with_positions",
    "read_net_with_positions",
    "read_solver",
    "read_solver_text",
    "read_text",
    "upgrade_text",
]
