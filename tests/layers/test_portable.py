"""The layers' functional core (caffe2torch.layers.portable): what `convert` copies into a
standalone file must run there with nothing but torch, and no code hides in strings."""

from __future__ import annotations

import ast
import builtins
import math
import re
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from caffe2torch.layers import portable, registry

PACKAGE = Path(portable.__file__).resolve().parents[1]


@pytest.fixture(scope="module", autouse=True)
def _all_layers() -> None:
    registry._load_builtin_layers()


def test_portable_objects_name_only_torch_and_each_other() -> None:
    names = portable.portable_names()
    assert len(names) >= 30
    allowed = set(portable.ALLOWED_GLOBALS) | set(dir(builtins)) | set(names)
    for name in names:
        stray = portable.global_names(name) - allowed
        assert not stray, f"{name} reads {sorted(stray)}, which a standalone file lacks"


def test_copied_sources_run_with_only_torch() -> None:
    namespace = {"torch": torch, "F": F, "nn": nn, "math": math}
    for text in portable.sources(portable.portable_names()):
        assert "@portable" not in text
        exec(compile("from __future__ import annotations\n" + text, "<copy>", "exec"), namespace)
    x = torch.arange(2 * 3 * 5 * 5, dtype=torch.float32).reshape(2, 3, 5, 5)
    assert torch.equal(namespace["caffe_lrn"](x, 3, 1e-4, 0.75, 1.0, False),
                       portable.portable_object("caffe_lrn")(x, 3, 1e-4, 0.75, 1.0, False))


def test_needs_come_first() -> None:
    order = [t.split("(")[0].split()[-1] for t in portable.sources(["softmax_loss"])]
    assert order[-1] == "softmax_loss"
    assert {"caffe_normalizer", "_label_index", "_valid_mask", "_split_axis"} <= set(order)


def test_a_name_is_portable_once() -> None:
    def caffe_lrn(x: torch.Tensor) -> torch.Tensor:
        return x

    with pytest.raises(ValueError, match="already taken"):
        portable.portable(caffe_lrn)


_SOURCE_IN_TEXT = re.compile(r"^\s*(def|class)\s+\w+\s*[(:]", re.MULTILINE)
# standalone.py writes the per-net class (its __init__, forward) and load_model around the
# copied functional core: generated for each net, not a copy of library code
_GENERATED_SKELETON = {"export/standalone.py"}


def _docstrings(tree: ast.AST) -> set[int]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            doc = node.body[0] if node.body else None
            if isinstance(doc, ast.Expr) and isinstance(doc.value, ast.Constant):
                found.add(id(doc.value))
    return found


def test_no_python_source_in_string_literals() -> None:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        where = path.relative_to(PACKAGE).as_posix()
        if "proto" in path.parts or where in _GENERATED_SKELETON:
            continue
        tree = ast.parse(path.read_text(), str(path))
        docs = _docstrings(tree)
        for node in ast.walk(tree):
            text = node.value if isinstance(node, ast.Constant) else None
            if isinstance(text, str) and id(node) not in docs and _SOURCE_IN_TEXT.search(text):
                found.append(f"{where}:{node.lineno}")
    assert not found, f"Python source inside string literals: {found}"
