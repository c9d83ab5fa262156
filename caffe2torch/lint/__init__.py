"""The prototxt linter: ``lint(path) -> list[Diagnostic]``, stable codes (codes.CODES),
renderers and safe fixes.

The rule engine (``lint``, ``lint_file``, ``lint_text``) is loaded on first use, so that
the CLI can list the codes and formats without loading what the rules need.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from caffe2torch.lint.codes import CODES, explain
from caffe2torch.lint.context import Options
from caffe2torch.lint.diagnostic import Diagnostic, Edit, Fix

if TYPE_CHECKING:
    from caffe2torch.lint.engine import lint, lint_file, lint_text

_ENGINE = ("lint", "lint_file", "lint_text")


def __getattr__(name: str) -> Any:
    if name not in _ENGINE:
        raise AttributeError(f"module 'caffe2torch.lint' has no attribute {name!r}")
    value = getattr(importlib.import_module("caffe2torch.lint.engine"), name)
    globals()[name] = value
    return value


__all__ = ["CODES", "Diagnostic", "Edit", "Fix", "Options", "explain", "lint", "lint_file",
           "lint_text"]
