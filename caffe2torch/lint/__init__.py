"""The prototxt linter: ``lint(path) -> list[Diagnostic]``, stable codes (codes.CODES),
renderers and safe fixes."""

from caffe2torch.lint.codes import CODES, explain
from caffe2torch.lint.context import Options
from caffe2torch.lint.diagnostic import Diagnostic, Edit, Fix
from caffe2torch.lint.engine import lint, lint_file, lint_text

__all__ = ["CODES", "Diagnostic", "Edit", "Fix", "Options", "explain", "lint", "lint_file",
           "lint_text"]
