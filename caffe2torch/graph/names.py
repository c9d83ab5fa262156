"""Caffe names -> Python identifiers, reversibly (a table both ways).

Caffe layer and blob names may hold ``/``, ``.``, ``-`` or start with a digit
(``inception_3a/1x1``, ``conv1.bn``); module attributes and fx arguments must be identifiers.
Illegal characters become ``_``, a leading digit gets a ``_`` in front, Python keywords and
the attribute names nn.Module / fx.GraphModule use get a trailing ``_``, and collisions get
``_2``, ``_3``... in order of appearance.
"""

from __future__ import annotations

import builtins
import keyword
import re

from torch import fx

_ILLEGAL = re.compile(r"[^0-9a-zA-Z_]")
_RESERVED = frozenset(
    set(dir(fx.GraphModule)) | set(keyword.kwlist) | set(keyword.softkwlist) | {"self"}
)


def identifier(name: str) -> str:
    """``name`` as a Python identifier (not yet made unique)."""
    ident = _ILLEGAL.sub("_", name) or "_"
    if ident[0].isdigit():
        ident = "_" + ident
    if ident in _RESERVED or ident in vars(builtins):
        ident += "_"
    return ident


class NameTable:
    """Unique identifiers for Caffe names, both ways."""

    def __init__(self) -> None:
        self.to_ident: dict[str, str] = {}
        self.to_caffe: dict[str, str] = {}
        self._next: dict[str, int] = {}  # base -> last suffix tried (keeps add() O(1))

    def add(self, caffe_name: str, key: object = None) -> str:
        """The identifier of ``caffe_name``; a second call with an equal name but another
        ``key`` (two layers of the same name) gets a fresh identifier."""
        lookup = caffe_name if key is None else f"{caffe_name}\0{key}"
        if lookup in self.to_ident:
            return self.to_ident[lookup]
        base = identifier(caffe_name)
        n = self._next.get(base, 1)
        ident = base if n == 1 else f"{base}_{n}"
        while ident in self.to_caffe:
            n += 1
            ident = f"{base}_{n}"
        self._next[base] = n
        self.to_ident[lookup] = ident
        self.to_caffe[ident] = caffe_name
        return ident

    def ident(self, caffe_name: str) -> str:
        return self.to_ident[caffe_name]

    def caffe(self, ident: str) -> str:
        return self.to_caffe[ident]
