"""Training faults: a non-finite loss stops with the iteration and the layer; SIGINT /
SIGTERM snapshot then exit cleanly; a snapshot that fails to write leaves no partial file;
a resumed run continues exactly as the uninterrupted one."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

import caffe2torch as c2t
from caffe2torch.errors import CaffeError, SolverError

NAN_NET = """name: "nan"
layer { name: "x" type: "DummyData" top: "x" top: "y"
  dummy_data_param { shape { dim: 2 dim: 3 } shape { dim: 2 dim: 3 }
                     data_filler { type: "constant" value: -1 }
                     data_filler { type: "constant" value: 0 } } }
layer { name: "fc" type: "InnerProduct" bottom: "x" top: "fc"
  inner_product_param { num_output: 3 weight_filler { type: "constant" value: 0 } } }
layer { name: "bad_log" type: "Log" bottom: "x" top: "lx" }
layer { name: "sum" type: "Eltwise" bottom: "fc" bottom: "lx" top: "s" }
layer { name: "loss" type: "EuclideanLoss" bottom: "s" bottom: "y" top: "loss" }
"""

HDF5_NET = """name: "reg"
layer { name: "data" type: "HDF5Data" top: "x" top: "y"
  hdf5_data_param { source: "h5.txt" batch_size: 2 } }
layer { name: "fc" type: "InnerProduct" bottom: "x" top: "fc"
  inner_product_param { num_output: 1 weight_filler { type: "gaussian" std: 0.1 } } }
layer { name: "loss" type: "EuclideanLoss" bottom: "fc" bottom: "y" top: "loss" }
"""

SOLVER = """net: "net.prototxt"
base_lr: {lr}
momentum: 0.9
weight_decay: 0.001
lr_policy: "step"
gamma: 0.5
stepsize: 3
max_iter: {max_iter}
display: 1
snapshot: {snapshot}
snapshot_prefix: "snap/reg"
random_seed: 3
"""


def _setup(folder: Path, net: str, *, lr: float = 0.01, max_iter: int = 6,
           snapshot: int = 0) -> Path:
    (folder / "net.prototxt").write_text(net)
    (folder / "snap").mkdir(exist_ok=True)
    solver = folder / "solver.prototxt"
    solver.write_text(SOLVER.format(lr=lr, max_iter=max_iter, snapshot=snapshot))
    rng = np.random.default_rng(0)
    with h5py.File(folder / "d.h5", "w") as f:
        f["x"] = rng.normal(size=(10, 4)).astype(np.float32)
        f["y"] = rng.normal(size=(10, 1)).astype(np.float32)
    (folder / "h5.txt").write_text("d.h5\n")
    return solver


def test_non_finite_loss_names_iteration_and_layer(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    solver = c2t.get_solver(_setup(tmp_path, NAN_NET), log=None)
    with pytest.raises(SolverError) as info:
        solver.step(3)
    err = info.value
    assert "iteration 0" in err.message and "nan" in err.message.lower()
    assert "layer 'bad_log' (Log)" in err.message
    assert err.path == str(tmp_path / "solver.prototxt") or err.path == "solver.prototxt"


def test_diverging_lr_stops_with_a_typed_error(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    solver = c2t.get_solver(_setup(tmp_path, HDF5_NET, lr=1e18, max_iter=200), log=None)
    with pytest.raises(SolverError, match=r"iteration \d+: the loss is (nan|inf)"):
        solver.step(200)


def _weights(solver) -> list[np.ndarray]:
    return [p.detach().cpu().numpy().copy() for blobs in solver.net.params.values()
            for p in blobs]


def test_resume_is_exact(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    path = _setup(tmp_path, HDF5_NET, max_iter=8)
    straight = c2t.get_solver(path, log=None)
    straight.step(8)
    expected = _weights(straight)
    first = c2t.get_solver(path, log=None)
    first.step(5)  # across a step of the lr policy and mid-epoch of the data
    _, state = first.snapshot()
    resumed = c2t.get_solver(path, log=None)
    resumed.restore(state)
    assert resumed.iter == 5
    resumed.step(3)
    for a, b in zip(expected, _weights(resumed)):
        np.testing.assert_array_equal(a, b)


def test_failed_snapshot_leaves_no_partial_file(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    solver = c2t.get_solver(_setup(tmp_path, HDF5_NET), log=None)
    solver.step(2)
    model, state = solver.snapshot()
    before = (Path(model).read_bytes(), Path(state).read_bytes())
    solver.iter = 2  # same names: the rewrite must not damage the good files

    def broken_replace(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(CaffeError):
        solver.snapshot()
    monkeypatch.undo()
    assert (Path(model).read_bytes(), Path(state).read_bytes()) == before
    assert not [p.name for p in (tmp_path / "snap").iterdir() if p.name.endswith(".tmp")]


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_signal_snapshots_then_exits(tmp_path: Path, signum: int,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    solver = _setup(tmp_path, HDF5_NET, max_iter=1_000_000, snapshot=0)
    env = dict(os.environ, PYTHONPATH=str(Path(c2t.__file__).resolve().parent.parent))
    proc = subprocess.Popen(
        [sys.executable, "-m", "caffe2torch", "train", "-solver", str(solver)],
        cwd=tmp_path, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env)
    assert proc.stderr is not None
    deadline = time.monotonic() + 120
    for line in proc.stderr:  # wait until it trains
        if "Iteration 3" in line or time.monotonic() > deadline:
            break
    proc.send_signal(signum)
    try:
        _, rest = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    assert proc.returncode == 0, rest[-2000:]
    assert "Optimization stopped early" in rest
    models = sorted((tmp_path / "snap").glob("reg_iter_*.caffemodel"))
    states = sorted((tmp_path / "snap").glob("reg_iter_*.solverstate"))
    assert len(models) == 1 and len(states) == 1
    assert not [p for p in (tmp_path / "snap").iterdir() if p.name.endswith(".tmp")]
    it = int(models[0].stem.rsplit("_", 1)[1])
    assert it >= 3
    monkeypatch.chdir(tmp_path)
    resumed = c2t.get_solver(solver, log=None)
    resumed.restore(states[0])
    assert resumed.iter == it
