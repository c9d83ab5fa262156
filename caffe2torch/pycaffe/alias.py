"""Make ``import caffe`` (and ``caffe.io``, ``caffe.proto.caffe_pb2``, ``caffe.draw``,
``caffe.net_spec``...) resolve to caffe2torch.pycaffe, so that a script written for
pycaffe runs unchanged. ``caffe2torch run script.py`` installs it; a program can call
``install()`` itself. An installed finder sits first on ``sys.meta_path``; ``uninstall()``
takes it away (and forgets the aliased modules).
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
from types import ModuleType
from typing import Any

ALIAS = "caffe"
TARGET = "caffe2torch.pycaffe"


def target_of(fullname: str) -> str | None:
    """The module ``fullname`` stands for, or None when it is not ``caffe``'s."""
    if fullname == ALIAS:
        return TARGET
    if fullname.startswith(ALIAS + "."):
        # caffe.proto.caffe_pb2 is caffe2torch.pycaffe.proto's entry: ours, or the schema
        # of `run --proto` (pycaffe.schema)
        return TARGET + fullname[len(ALIAS):]
    return None


class _AliasLoader(importlib.abc.Loader):
    def __init__(self, module: ModuleType) -> None:
        self.module = module
        self.spec = module.__spec__

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        return self.module

    def exec_module(self, module: ModuleType) -> None:
        module.__spec__ = self.spec  # the real module keeps its own spec


class CaffeAliasFinder(importlib.abc.MetaPathFinder):
    """Finds ``caffe`` and ``caffe.*`` as the matching caffe2torch.pycaffe modules."""

    def find_spec(self, fullname: str, path: Any = None, target: Any = None
                  ) -> importlib.machinery.ModuleSpec | None:
        real = target_of(fullname)
        if real is None:
            return None
        try:
            module = importlib.import_module(real)
        except ModuleNotFoundError as exc:
            if exc.name == real:
                return _fork_module(fullname)
            raise
        is_pkg = hasattr(module, "__path__")
        return importlib.machinery.ModuleSpec(fullname, _AliasLoader(module),
                                              is_package=is_pkg)


# caffe.<name> modules loaded from a Caffe fork's python/ folder (_fork_module)
_FROM_FORK: set[str] = set()


def _fork_module(fullname: str) -> importlib.machinery.ModuleSpec:
    """``caffe.<name>`` that BVLC's pycaffe has not: a pure-Python module of a Caffe fork
    (weiliu89/caffe's ``caffe.model_libs``, which SSD's scripts import) found as
    ``caffe/<name>.py`` in a folder on sys.path, the fork's python/ that its users put on
    PYTHONPATH. It runs on this pycaffe: its ``import caffe`` and ``from .proto import
    caffe_pb2`` are caffe2torch's."""
    parts = fullname.split(".")
    ours = os.path.dirname(os.path.abspath(__file__))
    for entry in sys.path:
        if not isinstance(entry, str) or not os.path.isdir(os.path.join(entry or ".", ALIAS)):
            continue
        base = os.path.join(entry or ".", *parts)
        if os.path.abspath(os.path.join(entry or ".", ALIAS)) == ours:
            continue
        for file in (base + ".py", os.path.join(base, "__init__.py")):
            if os.path.isfile(file):
                spec = importlib.util.spec_from_file_location(
                    fullname, file, submodule_search_locations=[base]
                    if file.endswith("__init__.py") else None)
                if spec is not None:
                    _FROM_FORK.add(fullname)
                    return spec
    raise ModuleNotFoundError(
        f"No module named '{fullname}': caffe2torch's caffe is BVLC's pycaffe, which has no "
        f"'{parts[-1]}'. A module of a Caffe fork's python/caffe/ folder (pure Python) is "
        "used when that python/ folder is on PYTHONPATH", name=fullname)


def installed() -> bool:
    return any(isinstance(f, CaffeAliasFinder) for f in sys.meta_path)


def install() -> None:
    """Put the alias first on sys.meta_path (once)."""
    if not installed():
        sys.meta_path.insert(0, CaffeAliasFinder())


def uninstall() -> None:
    sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, CaffeAliasFinder)]
    for name in [n for n in sys.modules if n == ALIAS or n.startswith(ALIAS + ".")]:
        if getattr(sys.modules[name], "__name__", "").startswith("caffe2torch.") \
                or name in _FROM_FORK:
            del sys.modules[name]
    _FROM_FORK.clear()
