"""The scripts of tools/ loaded as modules for their tests (they are not a package)."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType

TOOLS = Path(__file__).resolve().parents[2] / "tools"


@contextmanager
def tool_module(stem: str) -> Iterator[ModuleType]:
    """tools/STEM.py as a module, registered in sys.modules while in use (dataclasses look
    their module up there)."""
    name = f"{stem}_under_test"
    spec = importlib.util.spec_from_file_location(name, TOOLS / f"{stem}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop(name, None)
