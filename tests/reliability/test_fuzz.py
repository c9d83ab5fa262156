"""The fuzz contract on a CI budget: seeded mutations of the corpus (tools/fuzz.py) reach
read_net / read_solver / upgrade_text / lint / load_net and the binary readers, and only
typed errors (naming the file) come out, with no hang and no memory blow-up.

``C2T_FUZZ_CASES`` (default 40) sets the number of cases; the run also stops after
``C2T_FUZZ_SECONDS`` (default 100). ``python tools/fuzz.py --minutes 30`` is the long run.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest

from tests.conftest import CORPUS, REPO, need_shared


def _fuzz_module():
    spec = importlib.util.spec_from_file_location("c2t_fuzz", REPO / "tools" / "fuzz.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("c2t_fuzz", module)
    spec.loader.exec_module(module)
    return module


fuzz = _fuzz_module()


def test_mutators_are_seeded_and_change_the_input() -> None:
    seed = fuzz.Seed("x.prototxt", "text",
                     b'name: "n"\nlayer { name: "a" type: "ReLU" bottom: "d" top: "d" }\n'
                     b'layer { name: "b" type: "Pooling" bottom: "d" top: "p" '
                     b"pooling_param { kernel_size: 3 stride: 2 } }\n")
    import random

    runs = [[fuzz.mutate(random.Random(s), seed) for s in range(30)] for _ in range(2)]
    assert runs[0] == runs[1]  # same seed, same cases
    assert sum(data != seed.data for data, _ in runs[0]) >= 25
    assert fuzz.m_swap_layers(random.Random(0), seed.data).index(b'name: "b"') < 20


def test_harness_flags_untyped_errors_and_hangs(tmp_path: Path) -> None:
    from caffe2torch.errors import ParseError

    assert fuzz._check_typed(ParseError("x", path="f"), "f", "read_net") is None
    assert "without the file's path" in fuzz._check_typed(ParseError("x"), "f", "read_net")
    assert "KeyError escaped" in fuzz._check_typed(KeyError("k"), "f", "lint")
    runner = fuzz.Runner(timeout=2, max_gib=8)
    try:
        res = runner.run("sleep", str(tmp_path))
    finally:
        runner.close()
    assert res["breaches"] and "hang" in res["breaches"][0]


@pytest.mark.fuzz
@pytest.mark.shared
def test_fuzz_corpus_bounded(tmp_path: Path) -> None:
    """The harness runs in a fresh interpreter: its workers fork from a process that has
    not run the rest of the suite (a fork inherits every thread's locks as they were)."""
    import json
    import subprocess

    need_shared(CORPUS)
    seeds = fuzz.load_corpus(CORPUS)
    assert any(s.kind == "text" for s in seeds) and any(s.kind != "text" for s in seeds)
    cases = int(os.environ.get("C2T_FUZZ_CASES", "40"))
    seconds = float(os.environ.get("C2T_FUZZ_SECONDS", "100"))
    report_path = tmp_path / "report.json"
    proc = subprocess.run(
        [sys.executable, str(REPO / "tools" / "fuzz.py"), "--corpus", str(CORPUS),
         "--seed", os.environ.get("C2T_FUZZ_SEED", "12345"), "--cases", str(cases),
         "--minutes", str(seconds / 60), "--timeout", "30", "--max-gib", "8",
         "--out", str(tmp_path / "out"), "--report", str(report_path)],
        cwd=REPO, capture_output=True, text=True, timeout=seconds * 3 + 120)
    assert report_path.exists(), proc.stderr[-2000:]
    report = json.loads(report_path.read_text())
    assert report["failures"] == 0, json.dumps(report.get("signatures", report), indent=1)
    assert report["cases"] >= min(cases, 10)
    assert proc.returncode == 0
