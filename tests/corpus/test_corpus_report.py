"""tools/corpus_report.py on a few corpus files: the stages and the reasons it records, the
input shapes it derives, and the markdown it writes (the full run is the tool's job)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import CORPUS
from tests.support.tools import tool_module

LENET = "BVLC__caffe/examples/mnist/lenet_train_test.prototxt"
PYTHON_NET = "BVLC__caffe/examples/pycaffe/linreg.prototxt"
NORMFACE = "happynear__NormFace/prototxt/normalized_Euclidean_triplet.prototxt"


@pytest.fixture(scope="module")
def report():
    if not (CORPUS / "MANIFEST.tsv").exists():
        pytest.skip("../shared/corpus is absent")
    with tool_module("corpus_report") as module:
        yield module


def rows_of(report, rel: str, tmp_path: Path, onnx: bool = False) -> dict:
    formats = dict(report.manifest_nets(CORPUS, rel))
    if rel not in formats:
        pytest.skip(f"{rel} is not in this corpus")
    rows = report.check_file(CORPUS, rel, formats[rel], report.bvlc_types(), tmp_path, onnx, {})
    return {r.phase: r for r in rows}


def test_train_test_net_gets_shapes_from_the_deploy_net_beside_it(report, tmp_path) -> None:
    rows = rows_of(report, LENET, tmp_path, onnx=True)
    assert set(rows) == {"TRAIN", "TEST"}
    for row in rows.values():
        assert (row.parse, row.build, row.forward) == ("ok", "derived", "ok"), row
        assert "deploy net beside it" in row.notes[0]
        assert row.family == "BVLC"
    assert rows["TEST"].onnx == "ok" and rows["TRAIN"].onnx == "-"
    shapes, how = report.derive_shapes(report.read_any(CORPUS / LENET, "V2"), "TRAIN",
                                       CORPUS / LENET, {})
    assert shapes == {"data": (64, 1, 28, 28), "label": (64,)}
    assert how == "deploy net beside it"


def test_python_layer_and_fragment_reasons(report, tmp_path) -> None:
    (row,) = rows_of(report, PYTHON_NET, tmp_path).values()
    assert row.build == "skip" and "Python layer" in row.reason
    fragment = rows_of(report, NORMFACE, tmp_path)
    assert {r.build for r in fragment.values()} == {"refused"}
    assert all("unknown bottom blob" in r.reason for r in fragment.values())
    assert all(r.family == "fork" for r in fragment.values())


def test_markdown_has_summary_and_one_line_per_row(report, tmp_path) -> None:
    rows = list(rows_of(report, LENET, tmp_path).values())
    rows += list(rows_of(report, PYTHON_NET, tmp_path).values())
    text = report.render(rows)
    assert "## Summary" in text and "- build: derived 2, skip 1" in text
    table = [line for line in text.splitlines() if line.startswith(f"| {LENET} |")]
    assert len(table) == 2
    assert text.count("| BVLC__caffe/examples/pycaffe/linreg.prototxt |") == 1
