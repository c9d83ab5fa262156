"""Snapshots as Caffe's Solver::Snapshot writes them, and the pieces Restore reads.

``<prefix>_iter_<N>.caffemodel`` (Net::ToProto: every layer with its blobs) and
``<prefix>_iter_<N>.solverstate`` (SolverState: iter, learned_net = the caffemodel's path,
current_step, history), or with ``snapshot_format: HDF5`` ``.caffemodel.h5`` (Net::ToHDF5:
group ``data/<layer>/<i>``) and ``.solverstate.h5``. Caffe's ToHDF5 leaves out the blobs a
layer shares from another; here every layer's blobs are written (a sharer's equal its
owner's), which Caffe's CopyTrainedLayersFromHDF5 reads the same way and which every
loader that expects one dataset per blob can read. Every file is written to a temporary
name and renamed, so a crash never leaves a half-written snapshot in place of a good one.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable
from typing import Any

import numpy as np

from caffe2torch.errors import WriteError
from caffe2torch.solver.state import SolverStateData, write_solver_state


def snapshot_filename(prefix: str, iteration: int, extension: str) -> str:
    """Solver::SnapshotFilename."""
    return f"{prefix}_iter_{iteration}{extension}"


def _atomically(path: str, write: Callable[[str], None]) -> None:
    """``write(tmp)`` then rename tmp over ``path``."""
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp",
                               dir=folder)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except OSError as e:
        raise WriteError(f"cannot write the snapshot: {e.strerror or e}", path=path) from None
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)


def write_hdf5_caffemodel(net: Any, path: str) -> None:
    """Net::ToHDF5 (without diffs): ``data/<layer>/<i>`` for every blob of every layer."""
    import h5py

    def write(tmp: str) -> None:
        with h5py.File(tmp, "w") as f:
            data = f.create_group("data")
            for pos, name in enumerate(net.layer_names):
                group = data.require_group(name)
                module = net.module(name) if net.layer_names.index(name) == pos else None
                if module is None:  # a second layer of the same name: Caffe fails here too
                    continue
                for i, blob in enumerate(module.blobs):
                    group.create_dataset(str(i), data=blob.detach().float().cpu().numpy())

    _atomically(path, write)


def write_state(path: str, data: SolverStateData, fmt: str, proto: Any = None) -> None:
    """The solver state, atomically (the binary writer already is); ``proto``: the fork
    schema a binary state is written in."""
    if fmt == "HDF5":
        _atomically(path, lambda tmp: write_solver_state(tmp, data, "HDF5"))
    else:
        write_solver_state(path, data, fmt, proto)


def history_arrays(optimizer: Any) -> list[np.ndarray]:
    return [h.detach().float().cpu().numpy() for h in optimizer.history()]


def ensure_folder(prefix: str) -> str | None:
    """Create the snapshot folder when it is missing (Caffe refuses to start instead);
    returns the folder made, or None."""
    folder = os.path.dirname(prefix)
    if folder and not os.path.isdir(folder):
        try:
            os.makedirs(folder, exist_ok=True)
        except OSError as e:
            raise WriteError(f"cannot create the snapshot folder: {e.strerror or e}",
                             path=folder, hint="check snapshot_prefix") from None
        return folder
    return None


def resolve_learned_net(learned_net: str, state_path: str) -> str:
    """The caffemodel a solver state names: as written (relative to the working directory,
    as Caffe opens it), else beside the state file (a snapshot folder that was moved)."""
    if os.path.exists(learned_net):
        return learned_net
    beside = os.path.join(os.path.dirname(os.path.abspath(state_path)),
                          os.path.basename(learned_net))
    return beside if os.path.exists(beside) else learned_net


__all__ = [
    "ensure_folder",
    "history_arrays",
    "resolve_learned_net",
    "snapshot_filename",
    "write_hdf5_caffemodel",
    "write_state",
]
