"""Every BVLC-layer deploy net of the corpus exports to ONNX that onnxruntime reproduces,
and converts to a standalone module that reproduces it too (tools/corpus_export.py prints
the table)."""

from __future__ import annotations

import importlib.util
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


# Known failures, each with its reason; any other failing net fails the test.
KNOWN_FAILURES = {
    # The tracer loses a channel size behind the symbolic batch axis before a BatchNorm;
    # it exports and verifies with a fixed batch (--batch 1), as the error message says.
    "soeaver__caffe-model/cls/dpn/deploy_dpn92.prototxt": "dynamic batch axis",
}


@pytest.mark.slow
def test_corpus_deploy_nets_export(corpus_dir: Path, capsys) -> None:
    tool = _tool()
    code = tool.main(["--corpus", str(corpus_dir)])
    out = capsys.readouterr().out
    summary = out[out.rindex("net files:"):]
    with capsys.disabled():
        print("\n" + summary)
    failures = [line for line in out.splitlines() if line.startswith(("onnx-fail", "convert-fail"))]
    unexpected = [f for f in failures if not any(known in f for known in KNOWN_FAILURES)]
    assert not unexpected, "\n".join(unexpected)
    assert code in (0, 1)
    assert "BVLC-layer deploy nets: 0" not in summary
