"""SIGTERM in the middle of ``caffe2torch train``: the run writes a snapshot of the
iteration it reached and exits 0; ``train -snapshot`` from it continues with exactly the
losses of an uninterrupted run (CPU: bit-identical), because the snapshot holds the
weights, the history and the lr policy's step, and restoring moves the data on to where
the interrupted run had left it. The net is the golden solver's tiny softmax net."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from caffe2torch.solver.metrics import read_metrics
from tests.conftest import GOLDEN, REPO, need_shared

CASE = GOLDEN / "solver" / "sgd_momentum_l2"
MAX_ITER = 400
SOLVER = f"""net: "train.prototxt"
type: "Nesterov"
base_lr: 0.02
lr_policy: "multistep"
stepvalue: 50
stepvalue: 150
gamma: 0.5
momentum: 0.9
weight_decay: 0.001
max_iter: {MAX_ITER}
display: 1
snapshot_prefix: "snap/run"
random_seed: 3
"""


def _folder(tmp_path: Path, name: str) -> Path:
    src = need_shared(CASE)
    work = tmp_path / name
    work.mkdir()
    for f in ("train.prototxt", "h5list.txt", "data.h5"):
        shutil.copy(src / f, work / f)
    (work / "solver.prototxt").write_text(SOLVER)
    return work


def _train(work: Path, *extra: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    return subprocess.Popen(
        [sys.executable, "-m", "caffe2torch", "train", "-solver", "solver.prototxt", "-q",
         *extra], cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _losses(csv: Path) -> dict[int, float]:
    try:
        rows = read_metrics(csv)
    except (KeyError, TypeError, ValueError):  # read while the trainer writes a line
        return {}
    return {r["iteration"]: r["value"] for r in rows if r["metric"] == "iteration_loss"}


@pytest.mark.slow
def test_sigterm_snapshot_then_resume_is_bit_identical(tmp_path: Path) -> None:
    full = _folder(tmp_path, "full")
    reference = _train(full, "--log-csv", "full.csv")
    cut = _folder(tmp_path, "cut")
    run = _train(cut, "--log-csv", "cut.csv")
    csv = cut / "cut.csv"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and run.poll() is None:
        if csv.exists() and len(_losses(csv)) >= 30:
            break
        time.sleep(0.02)
    assert run.poll() is None, "the run ended before it could be interrupted"
    run.send_signal(signal.SIGTERM)
    _, err = run.communicate(timeout=120)
    assert run.returncode == 0, err.decode()
    states = sorted(cut.glob("snap/run_iter_*.solverstate"))
    assert len(states) == 1, states
    at = int(states[0].name.split("_iter_")[1].split(".")[0])
    assert 30 <= at < MAX_ITER
    assert (cut / f"snap/run_iter_{at}.caffemodel").exists()
    assert max(_losses(csv)) == at - 1  # it stopped right after the iteration it saved

    resumed = _train(cut, "-snapshot", str(states[0].relative_to(cut)), "--log-csv",
                     "resumed.csv")
    _, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err.decode()
    _, err = reference.communicate(timeout=300)
    assert reference.returncode == 0, err.decode()

    expected = _losses(full / "full.csv")
    got = _losses(cut / "resumed.csv")
    assert sorted(got) == list(range(at, MAX_ITER))
    assert {i: expected[i] for i in got} == got  # bit-identical float32 losses
    before = _losses(csv)
    assert {i: expected[i] for i in before} == before
