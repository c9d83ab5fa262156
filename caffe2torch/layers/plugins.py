"""Custom layer types without editing caffe2torch: registration, parameter fields that the
schema does not know, and discovery through Python entry points.

A plug-in layer whose options already live in the schema names its message like a built-in
type (``param="inner_product_param"``). A type whose options are not in the schema declares
them as a dict of fields with their defaults::

    @c2t.register_layer("MyScale", fields={"factor": 1.0})
    def build(ctx):
        return MyScale(c2t.layer_fields(ctx).factor)

and nets may then write ``my_scale_param { factor: 2 }`` (the block name is the type in
snake case plus ``_param``, or ``param_name=``). Protobuf's text parser rejects unknown
fields, so such blocks are taken out of the text before parsing (replaced by blanks, so
every line and column stays where it was) and their values are kept beside the parsed layer;
:func:`layer_fields` gives them to the builder, typed like the defaults.

Entry points of the group ``caffe2torch.layers`` (a module or a callable that registers
types) are loaded once, on the first registry lookup or net parse.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import metadata
from typing import Any

from google.protobuf import text_format

from caffe2torch.errors import BuildError, ParseError
from caffe2torch.io import text as _text
from caffe2torch.layers import registry
from caffe2torch.layers.registry import BuildContext, Builder
from caffe2torch.proto import caffe_pb2
from caffe2torch.suggest import close_names, did_you_mean

ENTRY_POINT_GROUP = "caffe2torch.layers"
Scalar = bool | int | float | str


@dataclass(frozen=True)
class PluginParam:
    """The fields of a plug-in layer type's parameter block."""

    type: str
    name: str  # the block name in prototxt, e.g. "my_scale_param"
    defaults: dict[str, Any]


_PARAMS: dict[str, PluginParam] = {}  # block name -> declaration
_BY_TYPE: dict[str, PluginParam] = {}
# Values read from parsed text: serialized (blanked) layer -> {block: {field: value}}, and
# (name, type) -> the same, for layers the upgrade rewrote.
_BY_LAYER: dict[bytes, dict[str, dict[str, Any]]] = {}
_BY_NAME: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}


def snake_case(type_name: str) -> str:
    """``MyScale`` -> ``my_scale`` (the way Caffe names ``*_param`` fields)."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", type_name).lower()


def register_layer(
    type_name: str,
    *,
    fields: dict[str, Any] | None = None,
    param_name: str | None = None,
    param: str | None = None,
    bottoms: int | tuple[int, int | None] = 1,
    tops: int | tuple[int, int | None] = 1,
    blobs: Sequence[str] = (),
    aliases: Sequence[str] = (),
    loss: bool = False,
    data: bool = False,
    replace: bool = False,
) -> Callable[[Builder], Builder]:
    """Register a builder for ``type_name`` (see :func:`caffe2torch.layers.registry.
    register_layer` for the shared arguments). ``fields``: the type's own parameter fields
    and their defaults (bool, int, float, str, or a list of one of these for a repeated
    field), read from the ``param_name`` block (default: snake case of the type +
    ``_param``); a block name the schema already has is refused."""
    if fields is not None:
        if param is not None:
            raise ValueError("give either param= (a schema message) or fields=, not both")
        _declare(type_name, param_name or f"{snake_case(type_name)}_param", fields, replace)
    inner = registry.register_layer(
        type_name, param=param, bottoms=bottoms, tops=tops, blobs=blobs, aliases=aliases,
        loss=loss, data=data, replace=replace,
    )

    def decorate(builder: Builder) -> Builder:
        try:
            return inner(builder)
        except ValueError:
            if fields is not None:
                _forget(type_name)
            raise

    return decorate


def _declare(type_name: str, name: str, fields: dict[str, Any], replace: bool) -> None:
    if name in caffe_pb2.LayerParameter.DESCRIPTOR.fields_by_name:
        raise ValueError(f"{name!r} is a LayerParameter field already: use param={name!r}")
    if not re.fullmatch(r"[a-z_][a-z0-9_]*", name):
        raise ValueError(f"{name!r} is not a valid parameter block name")
    owner = _PARAMS.get(name)
    if owner is not None and owner.type != type_name and not replace:
        raise ValueError(f"{name!r} is already declared by layer type {owner.type!r}")
    for key, value in fields.items():
        _check_default(key, value)
    decl = PluginParam(type_name, name, dict(fields))
    _PARAMS[name] = decl
    _BY_TYPE[type_name] = decl


def _forget(type_name: str) -> None:
    decl = _BY_TYPE.pop(type_name, None)
    if decl is not None:
        _PARAMS.pop(decl.name, None)


def _check_default(key: str, value: Any) -> None:
    if not re.fullmatch(r"[A-Za-z_]\w*", key):
        raise ValueError(f"field name {key!r} is not an identifier")
    items = value if isinstance(value, list) else [value]
    if isinstance(value, list) and not value:
        raise ValueError(f"field {key!r}: a repeated field needs one example element")
    if not all(isinstance(v, (bool, int, float, str)) for v in items):
        raise ValueError(f"field {key!r}: defaults must be bool, int, float, str or a list")


def declared_param(type_name: str) -> PluginParam | None:
    """The field declaration of a plug-in type, if it has one."""
    return _BY_TYPE.get(type_name)


# --------------------------------------------------------------------------- builder side


class LayerFields:
    """A plug-in layer's field values (attribute access; defaults where not written)."""

    def __init__(self, decl: PluginParam, values: dict[str, Any]) -> None:
        self._decl = decl
        self._values = values

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        decl = self._decl
        if name not in decl.defaults:
            raise AttributeError(f"{decl.name} has no field {name!r}")
        if name in self._values:
            return self._values[name]
        default = decl.defaults[name]
        return [] if isinstance(default, list) else default

    def has(self, name: str) -> bool:
        """Whether the prototxt wrote ``name`` (HasField)."""
        return name in self._values

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self._decl.defaults}

    def __repr__(self) -> str:
        return f"{self._decl.name} {self.as_dict()}"


def layer_fields(ctx: BuildContext) -> LayerFields:
    """The values of the plug-in parameter block of ``ctx.layer`` (defaults when absent)."""
    decl = _BY_TYPE.get(ctx.layer.type)
    if decl is None:
        raise BuildError(
            f"layer '{ctx.layer.name}': type {ctx.layer.type} declares no plug-in fields",
            hint="register it with fields={...} to read a parameter block the schema lacks",
        )
    key = ctx.layer.SerializeToString(deterministic=True)
    found = _BY_LAYER.get(key) or _BY_NAME.get((ctx.layer.name, ctx.layer.type)) or {}
    return LayerFields(decl, found.get(decl.name, {}))


# ------------------------------------------------------------------------------ text side

_TOKEN = re.compile(
    r"""(?P<ws>\s+)|(?P<comment>\#[^\n]*)|(?P<string>"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*')"""
    r"""|(?P<word>[A-Za-z_][\w.]*)|(?P<number>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?[fF]?)"""
    r"""|(?P<punct>[{}:;,\[\]<>])|(?P<other>.)""",
    re.S,
)


@dataclass
class _Tok:
    kind: str
    text: str
    start: int
    end: int


def _tokens(text: str) -> list[_Tok]:
    return [
        _Tok(m.lastgroup or "other", m.group(), m.start(), m.end())
        for m in _TOKEN.finditer(text)
        if m.lastgroup not in ("ws", "comment")
    ]


def _line_col(text: str, offset: int) -> tuple[int, int]:
    line = text.count("\n", 0, offset) + 1
    return line, offset - (text.rfind("\n", 0, offset) + 1) + 1


def _blank(text: str, start: int, end: int) -> str:
    return text[:start] + re.sub(r"[^\n]", " ", text[start:end]) + text[end:]


def _matching_brace(toks: list[_Tok], i: int) -> int:
    """Index of the '}' closing the '{' at ``toks[i]`` (-1 when unbalanced)."""
    depth = 0
    for j in range(i, len(toks)):
        if toks[j].text == "{" and toks[j].kind == "punct":
            depth += 1
        elif toks[j].text == "}" and toks[j].kind == "punct":
            depth -= 1
            if depth == 0:
                return j
    return -1


def _convert(decl: PluginParam, key: str, tok: _Tok, text: str, path: str | None) -> Any:
    default = decl.defaults[key]
    kind = type(default[0]) if isinstance(default, list) else type(default)
    raw = tok.text
    line, col = _line_col(text, tok.start)

    def fail(expected: str) -> ParseError:
        return ParseError(
            f"{decl.name}.{key}: expected {expected}, got {raw}", path=path, line=line, col=col
        )

    if kind is bool:
        if raw in ("true", "True", "t", "1"):
            return True
        if raw in ("false", "False", "f", "0"):
            return False
        raise fail("true or false")
    if kind is int:
        if tok.kind != "number" or not re.fullmatch(r"[-+]?\d+", raw):
            raise fail("an integer")
        return int(raw)
    if kind is float:
        if tok.kind == "word" and raw.lower() in ("inf", "infinity", "nan", "-inf"):
            return float(raw)
        if tok.kind != "number":
            raise fail("a number")
        return float(raw.rstrip("fF"))
    if tok.kind == "string":
        return text_format.Tokenizer([raw]).ConsumeString()
    if tok.kind == "word":  # an enum-like bare word
        return raw
    raise fail("a string")


def _parse_block(
    decl: PluginParam, toks: list[_Tok], text: str, path: str | None
) -> dict[str, Any]:
    values: dict[str, Any] = {}
    i = 0
    while i < len(toks):
        key_tok = toks[i]
        line, col = _line_col(text, key_tok.start)
        if key_tok.kind != "word":
            raise ParseError(f"{decl.name}: expected a field name, got {key_tok.text}",
                             path=path, line=line, col=col)
        key = key_tok.text
        if key not in decl.defaults:
            hint = did_you_mean(close_names(key, decl.defaults)) or (
                "its fields are: " + ", ".join(decl.defaults)
            )
            raise ParseError(f'{decl.name} has no field named "{key}"', path=path, line=line,
                             col=col, hint=hint)
        if i + 2 >= len(toks) + 1 or i + 1 >= len(toks) or toks[i + 1].text != ":":
            raise ParseError(f'{decl.name}.{key}: expected ":" and a value (nested blocks are '
                             "not supported in plug-in fields)", path=path, line=line, col=col)
        if i + 2 >= len(toks):
            raise ParseError(f"{decl.name}.{key}: missing value", path=path, line=line, col=col)
        value = _convert(decl, key, toks[i + 2], text, path)
        if isinstance(decl.defaults[key], list):
            values.setdefault(key, []).append(value)
        else:
            values[key] = value  # the last one wins, as in protobuf text
        i += 3
        while i < len(toks) and toks[i].text in (",", ";"):
            i += 1
    return values


def _layer_spans(toks: list[_Tok]) -> list[tuple[int, int]]:
    """(open, close) token indices of the top-level ``layer { ... }`` blocks."""
    spans = []
    depth = 0
    i = 0
    while i < len(toks):
        t = toks[i]
        if t.kind == "punct" and t.text == "{":
            depth += 1
        elif t.kind == "punct" and t.text == "}":
            depth -= 1
        elif depth == 0 and t.kind == "word" and t.text in ("layer", "layers"):
            j = i + 1
            if j < len(toks) and toks[j].text == ":":
                j += 1
            if j < len(toks) and toks[j].text == "{":
                end = _matching_brace(toks, j)
                if end < 0:
                    break
                spans.append((j, end))
                i = end + 1
                continue
        i += 1
    return spans


def strip_plugin_blocks(text: str, path: str | None = None) -> str:
    """The text hook: blank out every declared plug-in block inside a layer and remember its
    values for :func:`layer_fields`. Text without such blocks is returned unchanged."""
    load_entry_points()
    if not _PARAMS or not any(name in text for name in _PARAMS):
        return text
    toks = _tokens(text)
    found: list[tuple[tuple[int, int], dict[str, dict[str, Any]]]] = []
    blanks: list[tuple[int, int]] = []
    for open_i, close_i in _layer_spans(toks):
        per_layer: dict[str, dict[str, Any]] = {}
        i = open_i + 1
        while i < close_i:
            t = toks[i]
            decl = _PARAMS.get(t.text) if t.kind == "word" else None
            j = i + 1
            if decl is not None and j < close_i and toks[j].text == ":":
                j += 1
            if decl is not None and j < close_i and toks[j].text == "{":
                end = _matching_brace(toks, j)
                per_layer.setdefault(decl.name, {}).update(
                    _parse_block(decl, toks[j + 1 : end], text, path)
                )
                blanks.append((t.start, toks[end].end))
                i = end + 1
                continue
            if t.text == "{":
                i = _matching_brace(toks, i) + 1
                continue
            i += 1
        if per_layer:
            found.append(((toks[open_i].end, toks[close_i].start), per_layer))
    for start, end in blanks:
        text = _blank(text, start, end)
    for (start, end), per_layer in found:
        _remember(text[start:end], per_layer)
    return text


def _remember(body: str, values: dict[str, dict[str, Any]]) -> None:
    layer = caffe_pb2.LayerParameter()
    try:
        text_format.Merge(body, layer)
    except text_format.ParseError:
        return  # the net parse reports it, with its position
    _BY_LAYER[layer.SerializeToString(deterministic=True)] = values
    _BY_NAME[(layer.name, layer.type)] = values


_text.add_text_hook(strip_plugin_blocks)


# ---------------------------------------------------------------------------- entry points

_entry_points_loaded = False


def load_entry_points(force: bool = False) -> list[str]:
    """Load the ``caffe2torch.layers`` entry points once (``force``: again); returns their
    names. A module entry point registers on import; a callable is called with no
    arguments. A plug-in that fails to load is reported as a warning and skipped."""
    global _entry_points_loaded
    if _entry_points_loaded and not force:
        return []
    _entry_points_loaded = True
    registry._load_builtin_layers()  # built-ins first: a plug-in may replace one of them
    loaded = []
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        try:
            target = ep.load()
            if callable(target):
                target()
        except Exception as exc:  # a broken plug-in must not stop other nets from loading
            warnings.warn(
                f"caffe2torch: the layer plug-in {ep.name!r} ({ep.value}) failed to load: "
                f"{type(exc).__name__}: {exc}",
                RuntimeWarning,
                stacklevel=2,
            )
            continue
        loaded.append(ep.name)
    return loaded
