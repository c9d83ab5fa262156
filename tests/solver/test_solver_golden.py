"""Whole training runs against BVLC Caffe's trajectories (../shared/golden/solver).

Each case is trained END TO END through ``c2t.get_solver("solver.prototxt")`` with the case
folder (a copy, so snapshots land in tmp_path) as the working directory: the HDF5Data layer
reads ``h5list.txt``, the params start from ``init/*``, and ``solver.step(1)`` runs each
iteration. The loss of every iteration (rtol 1e-5), the rate and every param after every
update (the case's tolerances) must match Caffe's. Snapshot cases also check our snapshot
against Caffe's and resume from Caffe's own snapshot files.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import caffe2torch as c2t
from caffe2torch.io import read_caffemodel_arrays
from caffe2torch.solver.state import read_solver_state
from tests.conftest import GOLDEN, need_shared

SOLVER_DIR = GOLDEN / "solver"
CASES = sorted(p.name for p in SOLVER_DIR.iterdir() if (p / "trajectory.npz").exists()) \
    if SOLVER_DIR.exists() else []
SNAPSHOT_CASES = [c for c in CASES if c.startswith("snapshot")]


def _case(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
          ) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    src = need_shared(SOLVER_DIR / name)
    work = tmp_path / name
    shutil.copytree(src, work)
    monkeypatch.chdir(work)
    meta = json.loads((work / "meta.json").read_text())
    with np.load(work / "trajectory.npz") as z:
        traj = {k: z[k] for k in z.files}
    return meta, traj


def _layers(traj: dict[str, np.ndarray], key: str) -> dict[str, list[np.ndarray]]:
    """{layer: [blob 0, blob 1, ...]} from keys ``<key>/<layer>/<i>``."""
    found: dict[str, dict[int, np.ndarray]] = {}
    for k, v in traj.items():
        if k.startswith(key + "/"):
            layer, i = k[len(key) + 1:].rsplit("/", 1)
            found.setdefault(layer, {})[int(i)] = v
    return {ly: [d[i] for i in sorted(d)] for ly, d in found.items()}


def _check_params(solver: Any, traj: dict[str, np.ndarray], key: str, row: int, t: int,
                  meta: dict[str, Any], case: str) -> None:
    tol = meta["tolerance"]
    atol = 1e-6 if t < 10 else float(tol["param_atol"])
    for layer, blobs in _layers(traj, key).items():
        for i, expected in enumerate(blobs):
            got = solver.net.params[layer][i].detach().numpy()
            np.testing.assert_allclose(
                got, expected[row], rtol=float(tol["param_rtol"]), atol=atol,
                err_msg=f"{case}: {layer}/{i} after iteration {t}")


def _run(solver: Any, traj: dict[str, np.ndarray], meta: dict[str, Any], case: str,
         start: int, stop: int, prefix: str = "") -> None:
    rtol = float(meta["tolerance"]["loss_rtol"])
    for t in range(start, stop):
        row = t - start if prefix else t
        solver.step(1)
        np.testing.assert_allclose(solver.iteration_loss, traj[f"{prefix}loss"][row],
                                   rtol=rtol, err_msg=f"{case}: loss at iteration {t}")
        if not prefix:  # the rate is bit-exact
            assert np.float32(solver.lr) == traj["lr"][t], f"{case}: lr at iteration {t}"
        assert solver.iter == int(traj[f"{prefix}iter_after"][row])
        _check_params(solver, traj, f"{prefix}param", row, t, meta, case)


@pytest.mark.parametrize("name", CASES)
def test_trajectory_end_to_end(name: str, tmp_path: Path,
                               monkeypatch: pytest.MonkeyPatch) -> None:
    meta, traj = _case(name, tmp_path, monkeypatch)
    if Path("snap").exists():  # keep Caffe's snapshots aside; ours go to snap/
        Path("snap").rename("caffe_snap")
    solver = c2t.get_solver("solver.prototxt", log=None)
    solver.net.copy_from(_layers(traj, "init"))
    _run(solver, traj, meta, name, 0, int(meta["iters"]))
    if not meta.get("snapshot"):
        return
    # our snapshot at `at` holds what Caffe's holds
    at = int(meta["snapshot"]["at"])
    hdf5 = meta["snapshot"]["format"] == "HDF5"
    suffix = ".solverstate.h5" if hdf5 else ".solverstate"
    ours = read_solver_state(f"snap/snap_iter_{at}{suffix}")
    theirs = read_solver_state(f"caffe_snap/snap_iter_{at}{suffix}")
    assert (ours.iter, ours.current_step, ours.learned_net) == (
        theirs.iter, theirs.current_step, theirs.learned_net)
    assert len(ours.history) == len(theirs.history)
    for a, b in zip(ours.history, theirs.history):
        np.testing.assert_allclose(a.reshape(b.shape), b, rtol=1e-4, atol=1e-6)
    if not hdf5:
        _, mine = read_caffemodel_arrays(ours.learned_net)
        _, caffe = read_caffemodel_arrays(f"caffe_snap/snap_iter_{at}.caffemodel")
        for layer, blobs in caffe.items():
            for a, b in zip(mine[layer], blobs):
                np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    else:
        import h5py

        with h5py.File(ours.learned_net, "r") as f, \
                h5py.File(f"caffe_snap/snap_iter_{at}.caffemodel.h5", "r") as g:
            assert sorted(f["data"]) == sorted(g["data"])
            for layer in g["data"]:
                assert sorted(f["data"][layer]) == sorted(g["data"][layer])
                for i in g["data"][layer]:
                    np.testing.assert_allclose(f["data"][layer][i][()],
                                               g["data"][layer][i][()], rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("name", SNAPSHOT_CASES)
def test_resume_from_caffe_snapshot(name: str, tmp_path: Path,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """A fresh solver restored from Caffe's own snapshot continues Caffe's resumed run."""
    meta, traj = _case(name, tmp_path, monkeypatch)
    at = int(meta["snapshot"]["at"])
    suffix = ".solverstate.h5" if meta["snapshot"]["format"] == "HDF5" else ".solverstate"
    solver = c2t.get_solver("solver.prototxt", log=None)
    solver.restore(f"snap/snap_iter_{at}{suffix}")
    assert solver.iter == at
    _run(solver, traj, meta, name, at, int(meta["iters"]), prefix="resumed/")


@pytest.mark.parametrize("name", SNAPSHOT_CASES)
def test_resume_from_own_snapshot(name: str, tmp_path: Path,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Our snapshot, restored into a fresh solver, continues like the uninterrupted run."""
    meta, traj = _case(name, tmp_path, monkeypatch)
    shutil.rmtree("snap")
    at = int(meta["snapshot"]["at"])
    first = c2t.get_solver("solver.prototxt", log=None)
    first.net.copy_from(_layers(traj, "init"))
    first.step(at)  # snapshot: `at` writes snap/snap_iter_<at>.*
    suffix = ".solverstate.h5" if meta["snapshot"]["format"] == "HDF5" else ".solverstate"
    state = Path(f"snap/snap_iter_{at}{suffix}")
    assert state.exists()
    second = c2t.get_solver("solver.prototxt", log=None)
    second.restore(state)
    _run(second, traj, meta, name, at, int(meta["iters"]), prefix="resumed/")
