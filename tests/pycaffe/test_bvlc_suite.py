"""BVLC Caffe's own Python tests (../shared/pycaffe_tests, unchanged) run against
caffe2torch.pycaffe: laid out as BVLC's tree in a temporary folder (python/caffe/test,
with models/ and examples/ from the corpus for test_draw), with a generated conftest.py
that installs the ``import caffe`` alias, and run by pytest in a subprocess."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import CORPUS, REPO, SHARED, need_shared

SUITE = SHARED / "pycaffe_tests"
EXPECTED = 52  # tests in BVLC's python/caffe/test at 9b89154


@pytest.fixture
def bvlc_tree(tmp_path: Path) -> Path:
    need_shared(SUITE)
    test_dir = tmp_path / "python" / "caffe" / "test"
    test_dir.mkdir(parents=True)
    for f in SUITE.glob("test_*.py"):  # read by path: a temporary copy, not the project's
        shutil.copy(f, test_dir / f.name)
    for folder in ("models", "examples"):
        source = CORPUS / "BVLC__caffe" / folder
        if source.exists():
            (tmp_path / folder).symlink_to(source)
    (tmp_path / "conftest.py").write_text(
        "from caffe2torch.pycaffe import alias\n\nalias.install()\n")
    return tmp_path


@pytest.mark.slow
def test_bvlc_pycaffe_suite_passes(bvlc_tree: Path) -> None:
    extra: list[str] = []
    expected = EXPECTED
    if shutil.which("dot") is None or not (bvlc_tree / "models").exists():
        # test_draw renders PNGs with Graphviz over the corpus's BVLC models/examples
        extra = ["--deselect", "python/caffe/test/test_draw.py::TestDraw::test_draw_net"]
        expected -= 1
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])]))
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-W", "ignore",
         "--rootdir", str(bvlc_tree), *extra, "python/caffe/test"],
        cwd=bvlc_tree, env=env, capture_output=True, text=True, timeout=900)
    summary = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    passed = re.search(r"(\d+) passed", summary)
    assert passed and int(passed.group(1)) == expected, summary
    assert "failed" not in summary and "skipped" not in summary, summary
    assert "error" not in summary, summary
