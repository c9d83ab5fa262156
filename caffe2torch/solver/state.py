"""Solver state files as SGDSolver writes and restores them: ``.solverstate`` (a SolverState
BINARYPROTO) and ``.solverstate.h5`` (HDF5: ``iter``, ``learned_net``, ``current_step`` and
a ``history`` group with datasets ``0``, ``1``, ...)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from caffe2torch.errors import ParseError, WriteError
from caffe2torch.io import read_solverstate_arrays, write_solverstate
from caffe2torch.proto import caffe_pb2

PathLike = str | os.PathLike[str]


@dataclass
class SolverStateData:
    """What a solver snapshot holds besides the weights."""

    iter: int = 0
    current_step: int = 0
    learned_net: str = ""
    history: list[np.ndarray] = field(default_factory=list)


def is_hdf5(path: PathLike) -> bool:
    """By name (Caffe's rule: ``.h5`` suffix), else by the HDF5 signature."""
    p = os.fspath(path)
    if p.endswith(".h5"):
        return True
    try:
        with open(p, "rb") as f:
            return f.read(8) == b"\x89HDF\r\n\x1a\n"
    except OSError:
        return False


def read_solver_state(path: PathLike, proto: Any = None) -> SolverStateData:
    """Read either snapshot format (``proto``: the fork's caffe.proto that wrote it)."""
    p = os.fspath(path)
    if not os.path.exists(p):
        raise ParseError("solver state file not found", path=p, hint=_states_beside(p))
    if is_hdf5(p):
        return _read_h5(p)
    state, history = read_solverstate_arrays(p, proto)
    return SolverStateData(int(state.iter), int(state.current_step), state.learned_net,
                           [np.asarray(h, dtype=np.float32) for h in history])


def _states_beside(path: str) -> str:
    """What to resume from instead: the newest solver states in the folder ``path`` names
    (snapshots are <prefix>_iter_N.solverstate[.h5])."""
    folder = os.path.dirname(path) or "."
    try:
        names = [n for n in os.listdir(folder)
                 if n.endswith((".solverstate", ".solverstate.h5"))]
    except OSError:
        return "check the path; snapshots are written as <snapshot_prefix>_iter_N.solverstate"
    if not names:
        return (f"there is no .solverstate in {folder}; snapshots are written as "
                "<snapshot_prefix>_iter_N.solverstate")
    names.sort(key=lambda n: os.path.getmtime(os.path.join(folder, n)), reverse=True)
    shown = ", ".join(os.path.join(os.path.dirname(path), n) for n in names[:3])
    return f"the newest solver states there: {shown}"


def _scalar(f: Any, name: str, p: str) -> Any:
    if name not in f:
        raise ParseError(f"the solver state has no {name!r} dataset", path=p)
    value = f[name][()]
    return value.reshape(-1)[0] if isinstance(value, np.ndarray) else value


def _read_h5(p: str) -> SolverStateData:
    import h5py

    try:
        f = h5py.File(p, "r")
    except OSError as e:
        raise ParseError(f"not a readable HDF5 solver state: {e}", path=p) from None
    with f:
        if "iter" not in f and "data" in f:  # Net::ToHDF5's layout
            raise ParseError("this is an HDF5 caffemodel (a net's weights), not a solver "
                             "state", path=p, hint="resume from the .solverstate.h5 the "
                             "snapshot wrote beside it; to start a new run from these "
                             "weights, give them with -weights")
        it = int(_scalar(f, "iter", p))
        step = int(_scalar(f, "current_step", p))
        net = _scalar(f, "learned_net", p) if "learned_net" in f else b""
        if "history" not in f:
            raise ParseError("the solver state has no 'history' group", path=p)
        group = f["history"]
        history = []
        for i in range(len(group)):
            if str(i) not in group:
                raise ParseError(f"history dataset {i} is missing", path=p)
            history.append(np.asarray(group[str(i)][()], dtype=np.float32))
    learned = net.decode("utf-8", "replace") if isinstance(net, bytes) else str(net)
    return SolverStateData(it, step, learned, history)


def write_solver_state(path: PathLike, data: SolverStateData, fmt: str = "BINARYPROTO",
                       proto: Any = None) -> None:
    """Write ``data`` as SnapshotSolverStateToBinaryProto / ...ToHDF5 do; ``proto``: the
    fork's caffe.proto whose field numbers a BINARYPROTO state is written in."""
    p = os.fspath(path)
    if fmt == "HDF5":
        _write_h5(p, data)
        return
    if fmt != "BINARYPROTO":
        raise WriteError(f"unknown snapshot_format {fmt!r}", path=p,
                         hint="use BINARYPROTO or HDF5")
    state = caffe_pb2.SolverState()
    state.iter = data.iter
    state.learned_net = data.learned_net
    state.current_step = data.current_step
    write_solverstate(p, state, [np.asarray(h, dtype=np.float32) for h in data.history],
                      proto)


def _write_h5(p: str, data: SolverStateData) -> None:
    import h5py

    try:
        with h5py.File(p, "w") as f:
            f.create_dataset("iter", data=np.array([data.iter], dtype=np.int32))
            f.create_dataset("learned_net", data=np.bytes_(data.learned_net.encode()))
            f.create_dataset("current_step", data=np.array([data.current_step], np.int32))
            group = f.create_group("history")
            for i, h in enumerate(data.history):
                group.create_dataset(str(i), data=np.asarray(h, dtype=np.float32))
    except OSError as e:
        raise WriteError(f"cannot write the solver state: {e}", path=p) from None


__all__ = ["SolverStateData", "is_hdf5", "read_solver_state", "write_solver_state"]
