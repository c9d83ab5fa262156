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
                return None  # caffe.<something pycaffe has not>: a normal ImportError
            raise
        is_pkg = hasattr(module, "__path__")
        return importlib.machinery.ModuleSpec(fullname, _AliasLoader(module),
                                              is_package=is_pkg)


def installed() -> bool:
    return any(isinstance(f, CaffeAliasFinder) for f in sys.meta_path)


def install() -> None:
    """Put the alias first on sys.meta_path (once)."""
    if not installed():
        sys.meta_path.insert(0, CaffeAliasFinder())


def uninstall() -> None:
    sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, CaffeAliasFinder)]
    for name in [n for n in sys.modules if n == ALIAS or n.startswith(ALIAS + ".")]:
        if getattr(sys.modules[name], "__name__", "").startswith("caffe2torch."):
            del sys.modules[name]
