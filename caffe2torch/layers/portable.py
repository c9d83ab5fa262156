"""The layers' functional core: torch-only Caffe math that `convert` copies into its file.

A function (or small class) marked ``@portable`` is Caffe math the layer module itself runs,
written so that its source stands alone: it may name only ``torch``, ``F``
(torch.nn.functional), ``nn``, ``math``, builtins and other portable objects. `convert`
copies the real source (``inspect.getsource``) into the generated module, so the library
and the standalone file run the same lines and the generated file needs only torch.
tests/layers/test_portable.py checks the names each one uses.
"""

from __future__ import annotations

import inspect
import symtable
import textwrap
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

T = TypeVar("T", bound=Callable[..., Any])

# the module-level names a portable object may use: the standalone file's own imports
ALLOWED_GLOBALS = frozenset({"torch", "F", "nn", "math"})

_PORTABLE: dict[str, Callable[..., Any]] = {}


def portable(obj: T) -> T:
    """Mark ``obj`` as part of the functional core (see the module doc); one per name."""
    name = obj.__name__
    if name in _PORTABLE and _PORTABLE[name] is not obj:
        owner = _PORTABLE[name].__module__
        raise ValueError(f"portable name {name!r} is already taken by {owner}")
    _PORTABLE[name] = obj
    return obj


def portable_object(name: str) -> Callable[..., Any]:
    return _PORTABLE[name]


def portable_names() -> list[str]:
    return sorted(_PORTABLE)


def source_of(name: str) -> str:
    """The source of the portable object ``name`` without its ``@portable`` line."""
    text = textwrap.dedent(inspect.getsource(_PORTABLE[name]))
    lines = [line for line in text.splitlines() if line.strip() != "@portable"]
    return "\n".join(lines)


def global_names(name: str) -> set[str]:
    """The module-level names the source of ``name`` reads (builtins included)."""
    table = symtable.symtable(source_of(name), name, "exec")
    found: set[str] = set()

    def walk(scope: symtable.SymbolTable, top: bool) -> None:
        for sym in scope.get_symbols():
            if not sym.is_referenced():
                continue
            if sym.is_global() or (top and not sym.is_assigned() and not sym.is_imported()):
                found.add(sym.get_name())
        for child in scope.get_children():
            walk(child, False)

    walk(table, True)
    return found - {name}


def needs(name: str) -> list[str]:
    """The other portable objects ``name`` uses, in name order."""
    return sorted(n for n in global_names(name) if n in _PORTABLE and n != name)


def sources(names: Iterable[str]) -> list[str]:
    """The source texts of ``names`` and of what they use, each once, a need before its user."""
    order: list[str] = []

    def add(name: str) -> None:
        if name in order:
            return
        for need in needs(name):
            add(need)
        order.append(name)

    for name in names:
        add(name)
    return [source_of(name) for name in order]
