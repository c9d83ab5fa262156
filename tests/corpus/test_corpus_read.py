"""Every net and solver text of ../shared/corpus reads (parsed and upgraded to V2), and the
source map of every net points at the right blocks."""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import pytest

from caffe2torch.errors import CaffeError, ParseError, UpgradeError
from caffe2torch.io import read_net_with_positions, read_solver
from tests.conftest import CORPUS, need_shared

TEXT_FORMATS = ("V0", "V1", "V2", "solver")

# Files we refuse on purpose: (error class, text the message must contain, why).
KNOWN_FAILURES: dict[str, tuple[type[CaffeError], str, str]] = {
    "BVLC__caffe@pr216/examples/deepface/deepface.prototxt": (
        UpgradeError, "locally_connected",
        "V0 net with a `locally_connected` layer from an unmerged PR: Caffe's V0 upgrade has "
        "no such type and aborts (Unknown layer name), so do we",
    ),
    "BVLC__caffe@pr216/examples/deepface/deepface_train.prototxt": (
        UpgradeError, "locally_connected",
        "same net as deepface.prototxt, training version",
    ),
}


def _rows() -> list[dict[str, str]]:
    manifest = CORPUS / "MANIFEST.tsv"
    if not manifest.exists():
        return []
    with manifest.open(newline="") as f:
        return [r for r in csv.DictReader(f, delimiter="\t") if r["format"] in TEXT_FORMATS]


ROWS = _rows()


def _read(row: dict[str, str]) -> None:
    path = CORPUS / row["path"]
    if row["format"] == "solver":
        solver = read_solver(path)
        assert not solver.HasField("solver_type")
        for net in (solver.net_param, solver.train_net_param, *solver.test_net_param):
            assert len(net.layers) == 0  # inline nets come back upgraded
        return
    net, source = read_net_with_positions(path)
    assert len(net.layers) == 0 and len(net.input) == 0
    assert len(source) == len(net.layer)
    for i, layer in enumerate(net.layer):
        pos = source.layer(i)
        if pos.kind == "input":
            assert layer.type == "Input"
            assert source.top("input") == pos.start
        else:
            assert pos.closed
            assert (pos.name or "") == layer.name, (i, pos.start_line)


@pytest.mark.shared
@pytest.mark.parametrize("row", ROWS, ids=[r["path"] for r in ROWS])
def test_corpus_file_reads(row: dict[str, str]) -> None:
    need_shared(CORPUS)
    known = KNOWN_FAILURES.get(row["path"])
    if known is not None:
        cls, needle, _why = known
        with pytest.raises(cls) as info:
            _read(row)
        assert needle in str(info.value)
        assert info.value.line is not None
        return
    try:
        _read(row)
    except ParseError as e:  # a field our schema lacks: say which, and where
        assert e.line is not None and e.col is not None
        pytest.fail(f"not readable (add the field to the schema or to KNOWN_FAILURES): {e}")


@pytest.mark.shared
def test_corpus_counts() -> None:
    need_shared(CORPUS)
    counts: Counter[tuple[str, str]] = Counter()
    for row in ROWS:
        try:
            _read(row)
            counts[row["format"], "read"] += 1
        except CaffeError:
            counts[row["format"], "refused"] += 1
    for fmt in TEXT_FORMATS:
        print(f"corpus {fmt}: {counts[fmt, 'read']} read, {counts[fmt, 'refused']} refused")
    assert sum(v for (_, k), v in counts.items() if k == "refused") == len(KNOWN_FAILURES)
    assert sum(counts.values()) == len(ROWS) > 150
    assert all(Path(CORPUS / p).exists() for p in KNOWN_FAILURES)
