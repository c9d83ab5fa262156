"""Custom layer types without editing caffe2torch: registration, parameter fields that the
schema does not know, and discovery through Python entry points.

A plug-in layer whose options already live in the schema names its message like a built-in
type (``param="inner_product_param"``). A type whose options are not in the schema declares
them as a dict of fields with their defaults::

    @c2t.register_layer("MyScale", fields={"factor": 1.0})
    def build(ctx):
        return MyScale(c2t.layer_fields(ctx).factor)

and nets may then write ``my_scale_param { factor: 2 }`` (the block name is the type in
snake case plus ``_param``, or ``param_name=``). The net reader keeps such a block as it
keeps every field the schema lacks (io.extra: its values as written, with their line:col),
in the net's SourceMap, which hands each layer's to its builder (``BuildContext.extra``);
:func:`layer_fields` types the values like the declared defaults and points at a bad one.
Reading a net needs no plug-in loaded, and nothing is remembered between nets.

Entry points of the group ``caffe2torch.layers`` (a module or a callable that registers
types) are loaded once, on the first registry lookup.
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
from caffe2torch.io.extra import ExtraField, ExtraValue
from caffe2torch.layers import registry
from caffe2torch.layers.registry import BuildContext, Builder
from caffe2torch.layers.typeinfo import ENTRY_POINT_GROUP
from caffe2torch.proto import caffe_pb2
from caffe2torch.suggest import close_names, did_you_mean

Scalar = bool | int | float | str


@dataclass(frozen=True)
class PluginParam:
    """The fields of a plug-in layer type's parameter block."""

    type: str
    name: str  # the block name in prototxt, e.g. "my_scale_param"
    defaults: dict[str, Any]


# the declarations, beside the layer registry: block name -> declaration, and by type
_PARAMS: dict[str, PluginParam] = {}
_BY_TYPE: dict[str, PluginParam] = {}


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
    """The values of the plug-in parameter block of ``ctx.layer`` (defaults when absent),
    read from the fields the net reader kept for this layer (``ctx.extra``)."""
    decl = _BY_TYPE.get(ctx.layer.type)
    if decl is None:
        raise BuildError(
            f"layer '{ctx.layer.name}': type {ctx.layer.type} declares no plug-in fields",
            hint="register it with fields={...} to read a parameter block the schema lacks",
        )
    ctx.used_extra.add(decl.name)  # this builder understands the block
    values: dict[str, Any] = {}
    for kept in ctx.extra:
        if kept.kind == "field" and kept.dotted == decl.name:
            _merge(decl, kept, values)
    return LayerFields(decl, values)


def _merge(decl: PluginParam, kept: ExtraField, values: dict[str, Any]) -> None:
    """Add one written block to ``values`` as protobuf merges a message given twice: a
    scalar field takes the last value, a repeated one appends."""
    # (field name, the value as written or as a fork's schema typed it, its place if written)
    written: list[tuple[str, Any, ExtraValue | None]]
    if kept.typed:  # read with a fork's caffe.proto: already typed by its schema
        blocks = kept.value if isinstance(kept.value, list) else [kept.value]
        written = [(k, v, None) for b in blocks if isinstance(b, dict) for k, v in b.items()]
    else:
        written = [(v.path[0], v, v) for v in kept.values if v.path]
    for key, raw, value in written:
        where: ExtraValue | ExtraField = value or kept
        if key not in decl.defaults:
            hint = did_you_mean(close_names(key, decl.defaults)) or (
                "its fields are: " + ", ".join(decl.defaults)
            )
            line, col = value.key if value is not None and value.key else (where.line,
                                                                            where.col)
            raise ParseError(f'{decl.name} has no field named "{key}"', line=line, col=col,
                             hint=hint)
        if value is not None and (value.kind == "block" or len(value.path) > 1):
            raise ParseError(f"{decl.name}.{key}: nested blocks are not supported in plug-in "
                             "fields", line=value.line, col=value.col)
        items = raw if isinstance(raw, list) else [raw]
        typed = [_convert(decl, key, item, where) for item in items]
        if isinstance(decl.defaults[key], list):
            values.setdefault(key, []).extend(typed)
        else:
            values[key] = typed[-1]  # the last one wins, as in protobuf text


def _convert(decl: PluginParam, key: str, raw: Any, where: ExtraValue | ExtraField) -> Any:
    """``raw`` (a value as written, or a fork schema's typed value) as the type of the
    declared default of ``key``."""
    default = decl.defaults[key]
    kind = type(default[0]) if isinstance(default, list) else type(default)
    token = raw.token if isinstance(raw, ExtraValue) else raw
    tok_kind = raw.kind if isinstance(raw, ExtraValue) else None

    def fail(expected: str) -> ParseError:
        return ParseError(f"{decl.name}.{key}: expected {expected}, got {token}",
                          line=where.line, col=where.col)

    if tok_kind is None:  # typed by a fork schema: check the Python type only
        if kind is float and isinstance(token, (int, float)) and not isinstance(token, bool):
            return float(token)
        if isinstance(token, kind) and (kind is bool or not isinstance(token, bool)):
            return token
        raise fail({bool: "true or false", int: "an integer", float: "a number"}.get(
            kind, "a string"))
    if kind is bool:
        if token in ("true", "True", "t", "1"):
            return True
        if token in ("false", "False", "f", "0"):
            return False
        raise fail("true or false")
    if kind is int:
        if tok_kind != "num" or not re.fullmatch(r"[-+]?\d+", token):
            raise fail("an integer")
        return int(token)
    if kind is float:
        if tok_kind == "ident" and token.lower().lstrip("-") in ("inf", "infinity", "nan"):
            return float(token)
        if tok_kind != "num":
            raise fail("a number")
        try:
            return float(token.rstrip("fF"))
        except ValueError:
            raise fail("a number") from None
    if tok_kind == "str":
        return text_format.Tokenizer([token]).ConsumeString()
    if tok_kind == "ident":  # an enum-like bare word
        return token
    raise fail("a string")


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
