"""The prototxt linter: ``lint(path) -> list[Diagnostic]``, stable codes (codes.CODES),
renderers and safe fixes.

The rule engine (``lint``, ``lint_file``, ``lint_text``) is loaded on first use, so that
the CLI can list the codes and formats without loading what the rules need.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from caffe2torch.lazy import lazy_names
from caffe2torch.lint.codes import CODES, explain
from caffe2torch.lint.context import Options
from caffe2torch.lint.diagnostic import Diagnostic, Edit, Fix

if TYPE_CHECKING:
    from caffe2torch.lint.engine import lint, lint_file, lint_text

_ENGINE = ("lint", "lint_file", "lint_text")


__getattr__ = lazy_names(
    __name__, dict.fromkeys(_ENGINE, "caffe2torch.lint.engine"), globals())


__all__ = ["CODES", "Diagnostic", "Edit", "Fix", "Options", "explain", "lint", "lint_file",
           "lint_text"]
