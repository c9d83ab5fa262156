"""Caffe's update rules replayed on the golden solver trajectories (../shared/golden/solver).

Each case holds the raw summed gradient of every iteration (grad/*), so the update rules
can be checked without building the net: start from init/*, feed grad/* iteration by
iteration through CaffeOptimizer with the rate from LearningRatePolicy, compare with
param/* and lr. Snapshot cases also restore Caffe's own .solverstate and continue.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from caffe2torch.errors import SolverError
from caffe2torch.io import read_caffemodel_arrays, read_net, read_solver
from caffe2torch.solver.lr_policy import LearningRatePolicy
from caffe2torch.solver.state import SolverStateData, read_solver_state, write_solver_state
from caffe2torch.solver.updates import CaffeOptimizer, UpdateConfig
from tests.conftest import GOLDEN, need_shared

SOLVER_DIR = GOLDEN / "solver"
CASES = sorted(p.name for p in SOLVER_DIR.iterdir() if (p / "trajectory.npz").exists()) \
    if SOLVER_DIR.exists() else []


@dataclass
class Case:
    path: Path
    meta: dict[str, Any]
    traj: dict[str, np.ndarray]
    solver: Any
    owners: list[tuple[str, int, float, float]]  # (layer, blob, lr_mult, decay_mult)

    @property
    def iters(self) -> int:
        return int(self.meta["iters"])

    def tol(self) -> tuple[float, float]:
        t = self.meta["tolerance"]
        return float(t["param_rtol"]), float(t["param_atol"])


def load(name: str) -> Case:
    path = need_shared(SOLVER_DIR / name)
    meta = json.loads((path / "meta.json").read_text())
    with np.load(path / "trajectory.npz") as z:
        traj = {k: z[k] for k in z.files}
    solver = read_solver(path / "solver.prototxt")
    net = read_net(path / solver.net)
    sharers = set(meta.get("share_map", {}))
    owners = []
    for layer in net.layer:
        if layer.name in sharers:
            continue
        k = 0
        while f"init/{layer.name}/{k}" in traj:
            spec = layer.param[k] if k < len(layer.param) else None
            lr_mult = spec.lr_mult if spec is not None and spec.HasField("lr_mult") else 1.0
            decay = spec.decay_mult if spec is not None and spec.HasField("decay_mult") else 1.0
            owners.append((layer.name, k, float(lr_mult), float(decay)))
            k += 1
    return Case(path, meta, traj, solver, owners)


def make(case: Case, values: dict[tuple[str, int], np.ndarray]
         ) -> tuple[list[torch.Tensor], CaffeOptimizer, LearningRatePolicy]:
    params = [torch.nn.Parameter(torch.from_numpy(values[(ly, k)].copy()))
              for ly, k, _, _ in case.owners]
    specs = [{"params": [p], "lr_mult": lr, "decay_mult": dm, "name": f"{ly}/{k}"}
             for p, (ly, k, lr, dm) in zip(params, case.owners)]
    opt = CaffeOptimizer(specs, UpdateConfig.from_proto(case.solver))
    return params, opt, LearningRatePolicy.from_proto(case.solver)


def run(case: Case, params: list[torch.Tensor], opt: CaffeOptimizer,
        policy: LearningRatePolicy, start: int, stop: int,
        check: str | None = "param") -> None:
    rtol, atol = case.tol()
    for t in range(start, stop):
        rate = policy.rate(opt.iter)
        np.testing.assert_allclose(rate, case.traj["lr"][t], rtol=0, atol=0,
                                   err_msg=f"{case.path.name} lr at iteration {t}")
        for p, (ly, k, _, _) in zip(params, case.owners):
            p.grad = torch.from_numpy(case.traj[f"grad/{ly}/{k}"][t].copy())
        opt.step(rate=rate)
        if check is None:
            continue
        row = t - start if check == "resumed/param" else t
        for p, (ly, k, _, _) in zip(params, case.owners):
            names = [ly] + [s for s, o in case.meta.get("share_map", {}).items() if o == ly]
            for name in names:  # a sharer shows the owner's values
                expected = case.traj[f"{check}/{name}/{k}"][row]
                # iterations early in the run must match tightly; float32 drift grows later
                a = 1e-6 if t < 10 else atol
                np.testing.assert_allclose(
                    p.detach().numpy(), expected, rtol=rtol, atol=a,
                    err_msg=f"{case.path.name} {name}/{k} after iteration {t}")


def initial(case: Case) -> dict[tuple[str, int], np.ndarray]:
    return {(ly, k): case.traj[f"init/{ly}/{k}"] for ly, k, _, _ in case.owners}


@pytest.mark.parametrize("name", CASES)
def test_trajectory(name: str) -> None:
    case = load(name)
    params, opt, policy = make(case, initial(case))
    run(case, params, opt, policy, 0, case.iters)
    assert opt.iter == case.iters == int(case.traj["iter_after"][-1])


SNAPSHOT_CASES = [c for c in CASES if c.startswith("snapshot")]


@pytest.mark.parametrize("name", SNAPSHOT_CASES)
def test_resume_from_caffe_snapshot(name: str) -> None:
    """Restore Caffe's own solverstate + caffemodel and continue: the resumed trajectory."""
    case = load(name)
    at = int(case.meta["snapshot"]["at"])
    suffix = ".solverstate.h5" if case.meta["snapshot"]["format"] == "HDF5" else ".solverstate"
    state = read_solver_state(case.path / "snap" / f"snap_iter_{at}{suffix}")
    assert state.iter == at
    weights = case.path / state.learned_net
    if weights.suffix == ".h5":
        import h5py

        with h5py.File(weights, "r") as f:
            values = {(ly, k): f[f"data/{ly}/{k}"][()] for ly, k, _, _ in case.owners}
    else:
        _, arrays = read_caffemodel_arrays(weights)
        values = {(ly, k): arrays[ly][k] for ly, k, _, _ in case.owners}
    params, opt, policy = make(case, values)
    opt.load_history(state.history)
    opt.iter = state.iter
    policy.current_step = state.current_step
    run(case, params, opt, policy, at, case.iters, check="resumed/param")


@pytest.mark.parametrize("name", SNAPSHOT_CASES)
def test_own_snapshot_round_trip(name: str, tmp_path: Path) -> None:
    """Our state at the snapshot iteration equals Caffe's; saving and restoring it in a
    fresh optimizer continues exactly like the uninterrupted run."""
    case = load(name)
    at = int(case.meta["snapshot"]["at"])
    fmt = case.meta["snapshot"]["format"]
    params, opt, policy = make(case, initial(case))
    run(case, params, opt, policy, 0, at, check=None)
    caffe_state = read_solver_state(
        case.path / "snap" / f"snap_iter_{at}.solverstate{'.h5' if fmt == 'HDF5' else ''}")
    rtol, atol = case.tol()
    ours = [h.numpy() for h in opt.history()]
    assert len(ours) == len(caffe_state.history)
    for i, (a, b) in enumerate(zip(ours, caffe_state.history)):
        np.testing.assert_allclose(a, b.reshape(a.shape), rtol=rtol, atol=atol,
                                   err_msg=f"history blob {i}")
    assert policy.current_step == caffe_state.current_step

    out = tmp_path / ("state.solverstate.h5" if fmt == "HDF5" else "state.solverstate")
    write_solver_state(out, SolverStateData(opt.iter, policy.current_step, "w.caffemodel",
                                            ours), fmt=fmt)
    back = read_solver_state(out)
    assert (back.iter, back.current_step, back.learned_net) == (at, policy.current_step,
                                                                "w.caffemodel")
    values = {(ly, k): p.detach().numpy().copy() for p, (ly, k, _, _) in zip(params,
                                                                               case.owners)}
    params2, opt2, policy2 = make(case, values)
    opt2.load_history(back.history)
    opt2.iter, policy2.current_step = back.iter, back.current_step
    run(case, params, opt, policy, at, case.iters, check=None)
    run(case, params2, opt2, policy2, at, case.iters, check=None)
    for a, b in zip(params, params2):
        assert torch.equal(a, b)
    # and the torch state_dict path gives the same
    opt3 = CaffeOptimizer([{"params": [p]} for p in params2], opt2.config)
    opt3.load_state_dict(opt2.state_dict())
    assert opt3.iter == opt2.iter
    assert all(torch.equal(x, y) for x, y in zip(opt3.history(), opt2.history()))


# --------------------------------------------------------------------- rules without goldens


def _opt(kind: str, **kw: Any) -> tuple[torch.nn.Parameter, CaffeOptimizer]:
    p = torch.nn.Parameter(torch.tensor([1.0, -2.0, 0.0]))
    return p, CaffeOptimizer([p], UpdateConfig(type=kind, **kw))


def test_lr_mult_zero_never_moves() -> None:
    p = torch.nn.Parameter(torch.tensor([1.0, -2.0]))
    opt = CaffeOptimizer([{"params": [p], "lr_mult": 0.0}],
                         UpdateConfig(type="Adam", momentum=0.9, weight_decay=0.1))
    p.grad = torch.tensor([0.5, 0.5])
    opt.step(rate=0.1)
    assert p.tolist() == [1.0, -2.0]


def test_sgd_rate_inside_history() -> None:
    p, opt = _opt("SGD", momentum=0.5)
    for rate in (0.1, 0.01):
        p.grad = torch.ones(3)
        opt.step(rate=rate)
    # v1 = 0.1, v2 = 0.5*0.1 + 0.01 = 0.06: w = w0 - 0.16
    np.testing.assert_allclose(p.detach().numpy(), [0.84, -2.16, -0.16], rtol=1e-6)


def test_l1_uses_sign_and_clip_is_global() -> None:
    p, opt = _opt("SGD", weight_decay=0.5, regularization_type="L1")
    p.grad = torch.zeros(3)
    opt.step(rate=1.0)
    assert p.tolist() == [0.5, -1.5, 0.0]  # sign(0) = 0
    a = torch.nn.Parameter(torch.zeros(1))
    b = torch.nn.Parameter(torch.zeros(1))
    opt = CaffeOptimizer([a, b], UpdateConfig(clip_gradients=1.0, iter_size=2))
    a.grad, b.grad = torch.tensor([6.0]), torch.tensor([8.0])  # norm 10 -> scale 0.1
    opt.step(rate=1.0)
    assert opt.last_clip_scale == pytest.approx(0.1)
    np.testing.assert_allclose([a.item(), b.item()], [-0.3, -0.4], rtol=1e-6)


def test_two_history_layout() -> None:
    a = torch.nn.Parameter(torch.zeros(2))
    b = torch.nn.Parameter(torch.zeros(3))
    opt = CaffeOptimizer([a, b], UpdateConfig(type="AdaDelta", momentum=0.9))
    assert [tuple(h.shape) for h in opt.history()] == [(2,), (3,), (2,), (3,)]
    with pytest.raises(SolverError, match="needs 4"):
        opt.load_history([np.zeros(2), np.zeros(3)])
    with pytest.raises(SolverError, match="history blob 1"):
        opt.load_history([np.zeros(2), np.zeros(4), np.zeros(2), np.zeros(3)])


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"type": "Adagrad"}, "did you mean 'AdaGrad'"),
        ({"type": "AdaGrad", "momentum": 0.9}, "momentum"),
        ({"regularization_type": "L3"}, "regularization_type"),
        ({"type": "RMSProp", "rms_decay": 1.0}, "rms_decay"),
    ],
)
def test_config_errors(kw: dict[str, Any], match: str) -> None:
    with pytest.raises(SolverError, match=match):
        UpdateConfig(**kw)
