"""What lint and Net::Init's wiring know of a layer type without building it: its options
block, bottom/top counts, caffemodel blobs, older names, loss and data flags (the layer
registry's LayerSpec less its builder). Torch-free.

The built-in types' entries come from ``builtin_types.py`` (written from the registry by
tools/gen_builtin_types.py), so ``caffe2torch lint`` runs without importing torch. When the
live registry can know more, it answers instead: plug-ins of the ``caffe2torch.layers``
entry-point group are installed (they may add or replace types), or the registry is already
imported in this process (a caller may have registered types of its own).
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from caffe2torch.ir.graph import LayerKind
from caffe2torch.suggest import close_names, did_you_mean

ENTRY_POINT_GROUP = "caffe2torch.layers"
_REGISTRY_MODULE = "caffe2torch.layers.registry"


@dataclass(frozen=True)
class Arity:
    """How many bottoms or tops a layer accepts: ``low <= n <= high`` (high None: no limit)."""

    low: int
    high: int | None

    def accepts(self, n: int) -> bool:
        return n >= self.low and (self.high is None or n <= self.high)

    def describe(self) -> str:
        if self.high == self.low:
            return f"exactly {self.low}"
        if self.high is None:
            return f"at least {self.low}"
        return f"{self.low} to {self.high}"


@dataclass(frozen=True)
class TypeInfo:
    """A layer type as the registry declares it (see registry.register_layer)."""

    type: str
    param: str | None
    bottoms: Arity
    tops: Arity
    blobs: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()
    loss: bool = False
    data: bool = False


def info_of(spec: Any) -> TypeInfo:
    """The TypeInfo of a registry LayerSpec."""
    return TypeInfo(type=spec.type, param=spec.param, bottoms=spec.bottoms, tops=spec.tops,
                    blobs=spec.blobs, aliases=spec.aliases, loss=spec.loss, data=spec.data)


def _use_registry() -> bool:
    """Whether the live registry must answer (plug-ins installed, or already imported)."""
    return _REGISTRY_MODULE in sys.modules or _plugins_installed()


@functools.cache
def _plugins_installed() -> bool:
    """Whether any distribution declares the entry-point group (looked up once: the
    registry too loads the entry points once per process)."""
    from caffe2torch.layers.discovery import declares_entry_points

    return declares_entry_points(ENTRY_POINT_GROUP)


@functools.cache
def _table() -> tuple[dict[str, TypeInfo], dict[str, str]]:
    from caffe2torch.layers.builtin_types import TYPES

    by_type = {t.type: t for t in TYPES}
    aliases = {a: t.type for t in TYPES for a in t.aliases}
    return by_type, aliases


def find_type_info(type_name: str) -> TypeInfo | None:
    """The entry of a V2 type name or one of its aliases; None when unknown."""
    if _use_registry():
        from caffe2torch.layers.registry import find_layer_spec

        spec = find_layer_spec(type_name)
        return None if spec is None else info_of(spec)
    by_type, aliases = _table()
    return by_type.get(type_name) or by_type.get(aliases.get(type_name, ""))


def type_kind(type_name: str) -> LayerKind:
    """registry.layer_kind, from the built-in table when the registry need not load."""
    if _use_registry():
        from caffe2torch.layers.registry import layer_kind

        return layer_kind(type_name)
    by_type, aliases = _table()
    return kind_of(find_type_info(type_name), type_name, list(by_type), aliases)


def kind_of(info: Any, type_name: str, names: Sequence[str],
            aliases: Mapping[str, str]) -> LayerKind:
    """What Net::Init's wiring (ir.wire_net) needs to know of a type: loss, data, whether
    it is known, its blob counts (a Python layer's are its own code's business).
    ``info``: the type's TypeInfo or LayerSpec, None when unknown; ``names`` and
    ``aliases`` (alias -> type): every known name, for "did you mean"."""
    if info is None:
        hint = unknown_type_hint(type_name, suggest_from(type_name, names, aliases))
        return LayerKind(known=False, unknown_hint=hint)
    if info.type == "Python":
        return LayerKind(loss=info.loss, data=info.data)
    return LayerKind(loss=info.loss, data=info.data, bottoms=info.bottoms, tops=info.tops)


def suggest_from(type_name: str, names: Sequence[str], aliases: Mapping[str, str],
                 limit: int = 3) -> list[str]:
    """Up to ``limit`` types whose name or alias is close to ``type_name`` (did you mean)."""
    by_lower = {n.lower(): n for n in [*names, *aliases]}
    matches = close_names(type_name.lower(), by_lower, n=limit * 2)
    out: list[str] = []
    for m in matches:
        canonical = aliases.get(by_lower[m], by_lower[m])
        if canonical not in out:
            out.append(canonical)
    return out[:limit]


def unknown_type_hint(type_name: str, suggestions: list[str]) -> str:
    """How to fix an unknown type: the close names, the fork it comes from, a plug-in."""
    from caffe2torch.proto.forks import fork_of_layer_type

    plugin = (f'if it is a layer of its own, register a builder with '
              f'caffe2torch.register_layer("{type_name}") (README, \'Custom layers\')')
    fork = fork_of_layer_type(type_name)
    if fork:
        plugin = f"{type_name} comes from {fork}; {plugin}"
    close = did_you_mean(suggestions)
    return f"{close} {plugin}" if close else plugin
