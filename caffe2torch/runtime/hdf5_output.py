"""HDF5Output layers write their two bottoms (data, label) to ``file_name`` at every
forward, as Caffe's HDF5OutputLayer does; the layer module itself computes nothing, the
runner attaches a writer to it.

Caffe creates the file (truncating it) when the net is set up and writes datasets ``data``
and ``label`` shaped num x channels x height x width (the blobs' legacy 4-D shape). Caffe's
second forward aborts (the datasets already exist); here each forward appends its rows, so
the file holds every batch the net has seen.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch

from caffe2torch.errors import WriteError


def _legacy_4d(x: np.ndarray, what: str, path: str) -> np.ndarray:
    if x.ndim > 4:
        raise WriteError(f"HDF5Output: {what} has {x.ndim} axes; Caffe's legacy 4-D shape "
                         "allows at most 4", path=path)
    return x.reshape(tuple(x.shape) + (1,) * (4 - x.ndim))


class HDF5OutputFile:
    """One HDF5Output layer's file: created at attach, appended at every forward."""

    def __init__(self, path: str) -> None:
        import h5py

        self.path = path
        try:
            with h5py.File(path, "w"):
                pass
        except OSError as e:
            raise WriteError(f"failed to open the HDF5Output file: {e}", path=path) from None
        self.rows = 0

    def append(self, data: torch.Tensor, label: torch.Tensor) -> None:
        import h5py

        d = _legacy_4d(data.detach().float().cpu().numpy(), "data", self.path)
        lab = _legacy_4d(label.detach().float().cpu().numpy(), "label", self.path)
        if d.shape[0] != lab.shape[0]:
            raise WriteError(f"HDF5Output: data has {d.shape[0]} rows, label {lab.shape[0]}",
                             path=self.path, hint="data and label must have one batch size")
        try:
            with h5py.File(self.path, "a") as f:
                for name, arr in (("data", d), ("label", lab)):
                    if name not in f:
                        f.create_dataset(name, data=arr, maxshape=(None, *arr.shape[1:]),
                                         chunks=True)
                        continue
                    ds = f[name]
                    if tuple(ds.shape[1:]) != tuple(arr.shape[1:]):
                        raise WriteError(f"HDF5Output: {name} rows changed shape from "
                                         f"{tuple(ds.shape[1:])} to {tuple(arr.shape[1:])}",
                                         path=self.path)
                    ds.resize(ds.shape[0] + arr.shape[0], axis=0)
                    ds[-arr.shape[0]:] = arr
        except OSError as e:
            raise WriteError(f"cannot write the HDF5Output file: {e}", path=self.path
                             ) from None
        self.rows += d.shape[0]


def attach_hdf5_outputs(net: Any, cwd: str | None = None) -> list[HDF5OutputFile]:
    """Attach a writer to every HDF5Output layer of ``net`` (a CaffeNet); ``file_name`` is
    relative to ``cwd`` (default: the working directory)."""
    from caffe2torch.layers.bvlc.inputs import CaffeHDF5Output

    files = []
    for name in dict.fromkeys(net.layer_names):
        module = net.module(name)
        if not isinstance(module, CaffeHDF5Output):
            continue
        path = os.path.join(cwd or os.getcwd(), module.file_name)
        out = HDF5OutputFile(path)

        def hook(mod: Any, inputs: tuple[Any, ...], result: Any, out: HDF5OutputFile = out
                 ) -> None:
            out.append(inputs[0], inputs[1])

        module.register_forward_hook(hook)
        files.append(out)
    return files


__all__ = ["HDF5OutputFile", "attach_hdf5_outputs"]
