"""``train --tensorboard DIR``: the metrics CSV's values as TensorBoard scalars (read back
from the event file), and a clear error naming the extra when tensorboard is missing."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from caffe2torch.cli.main import main
from caffe2torch.solver.metrics import read_metrics


@pytest.fixture
def case(tiny_case) -> Path:
    return tiny_case(batch=6, max_iter=4, test_interval=2)


def test_tensorboard_scalars_match_the_csv(case: Path) -> None:
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    assert main(["train", "-solver", "solver.prototxt", "-q", "--tensorboard", "tb"]) == 0
    events = EventAccumulator(str(case / "tb"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"train/lr", "train/iteration_loss", "train/smoothed_loss", "train/loss",
            "test0/accuracy", "test0/loss"} <= tags
    rows = read_metrics(case / "out/solver_metrics.csv")
    for tag in tags:
        net, metric = tag.split("/", 1)
        expected = {r["iteration"]: r["value"] for r in rows
                    if r["net"] == net and r["metric"] == metric}
        got = {e.step: e.value for e in events.Scalars(tag)}
        assert got == pytest.approx(expected, rel=1e-6), tag
    lr = {e.step: e.value for e in events.Scalars("train/lr")}
    assert lr == pytest.approx({0: 0.1, 1: 0.1, 2: 0.1, 3: 0.05})
    assert sorted(e.step for e in events.Scalars("test0/accuracy")) == [0, 2, 4]


def test_missing_tensorboard_names_the_extra(case: Path, monkeypatch, capsys) -> None:
    monkeypatch.setitem(sys.modules, "tensorboard", None)
    assert main(["train", "-solver", "solver.prototxt", "-q", "--tensorboard", "tb"]) == 2
    err = capsys.readouterr().err
    assert "needs the tensorboard package" in err
    assert "caffe2torch[tensorboard]" in err
    assert not (case / "out").exists()  # refused before training
