"""Lint fixtures: each offending line carries its expected findings as an inline comment
(``# E: C2T201``, ``# W: C2T301``, ``# I: C2T604``); the findings must match exactly."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest

from caffe2torch.lint.codes import CODES
from caffe2torch.lint.context import Options
from caffe2torch.lint.engine import lint_file

FIXTURES = Path(__file__).parent / "fixtures"
_EXPECT = re.compile(r"\b([EWI]): (C2T\d{3})\b")
_LETTER = {"error": "E", "warning": "W", "info": "I"}


def expected(path: Path) -> Counter[tuple[int, str, str]]:
    out: Counter[tuple[int, str, str]] = Counter()
    for n, line in enumerate(path.read_text().split("\n"), 1):
        if "#" in line:
            for letter, code in _EXPECT.findall(line.split("#", 1)[1]):
                out[(n, letter, code)] += 1
    return out


def found(path: Path) -> Counter[tuple[int, str, str]]:
    check_data = "# check-data" in path.read_text()
    diags = lint_file(path, Options(check_data=check_data))
    return Counter((d.line, _LETTER[d.severity], d.code) for d in diags)


FILES = sorted(FIXTURES.glob("*.prototxt"))


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_fixture(path: Path) -> None:
    want, got = expected(path), found(path)
    missing = sorted((want - got).elements())
    extra = sorted((got - want).elements())
    assert not missing and not extra, f"missing {missing}, unexpected {extra}"


def test_every_code_has_a_fixture_or_a_test() -> None:
    """Each code is exercised: by a fixture expectation, or (weights, upgrade refusal and
    problems) by a test of its own in this folder."""
    covered = {code for p in FILES for (_, _, code) in expected(p)}
    own_tests = "".join(p.read_text() for p in Path(__file__).parent.glob("test_*.py")
                        if p.name != Path(__file__).name)
    covered |= {c for c in CODES if c in own_tests}
    assert sorted(set(CODES) - covered) == []


def test_fixture_families() -> None:
    """One fixture per family at least, each with negative cases (clean layers)."""
    families = {CODES[code].family for p in FILES for (_, _, code) in expected(p)}
    assert families >= {"syntax", "schema", "graph", "layer", "solver", "portability"}
