"""Every BVLC-layer deploy net of the corpus exports to ONNX that onnxruntime reproduces,
and converts to a standalone module that reproduces it too (tools/corpus_export.py prints
the table)."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO


def _tool():
    path = REPO / "tools" / "corpus_export.py"
    spec = importlib.util.spec_from_file_location("corpus_export", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while being made
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_corpus_deploy_nets_export(corpus_dir: Path, capsys) -> None:
    tool = _tool()
    code = tool.main(["--corpus", str(corpus_dir)])
    out = capsys.readouterr().out
    summary = out[out.rindex("net files:"):]
    with capsys.disabled():
        print("\n" + summary)
    failures = [line for line in out.splitlines() if line.startswith(("onnx-fail", "convert-fail"))]
    assert not failures, "\n".join(failures)
    assert code == 0
    tested = int(re.search(r"BVLC-layer deploy nets: (\d+)", summary).group(1))
    assert tested > 0
    assert f"ONNX exported and verified by onnxruntime: {tested}/{tested}" in summary
    assert f"standalone .py reproduces too:             {tested}/{tested}" in summary
