"""Device choice as Caffe's tools make it: ``-gpu`` (one id, a comma list or ``all``),
else the solver's ``solver_mode``/``device_id``; and how many data workers a device gets.
"""

from __future__ import annotations

import os
from typing import Any

import torch

from caffe2torch.errors import SolverError
from caffe2torch.proto import caffe_pb2
from caffe2torch.runtime.glog import GlogWriter


def gpu_ids(value: str | None) -> list[int] | None:
    """``-gpu``: None without it, [] for ``all``, else the ids of ``0`` / ``0,1``."""
    if value is None:
        return None
    parts = [v.strip() for v in value.split(",") if v.strip()]
    if parts == ["all"]:
        return []
    if not parts or not all(v.isdigit() for v in parts):
        raise ValueError(f"-gpu {value!r}: expected a device id, a comma list or 'all'")
    return [int(v) for v in parts]


def device_flag(value: str | None) -> str | None:
    """``-gpu 0`` / ``-gpu 0,1`` (the first) / ``-gpu all`` (GPU 0) -> a torch device, for
    the verbs that use one device."""
    ids = gpu_ids(value)
    if ids is None:
        return None
    return f"cuda:{ids[0] if ids else 0}"


def resolve_device(param: Any, requested: Any, log: GlogWriter) -> torch.device:
    """``requested`` (a torch device, "cpu", "cuda:N" or a GPU id) or, as ``caffe train``
    without -gpu, the solver's explicit ``solver_mode: GPU`` with ``device_id``; CPU
    otherwise. A GPU asked for without CUDA falls back to the CPU with a note."""
    want: torch.device
    if requested is None:
        gpu = param.HasField("solver_mode") and param.solver_mode == caffe_pb2.SolverParameter.GPU
        want = torch.device(f"cuda:{param.device_id}") if gpu else torch.device("cpu")
    elif isinstance(requested, int):
        want = torch.device(f"cuda:{requested}")
    else:
        want = torch.device(requested)
    if want.type == "cuda":
        if not torch.cuda.is_available():
            log.warning("a GPU was asked for but CUDA is not available: running on the CPU")
            return torch.device("cpu")
        index = want.index or 0
        if index >= torch.cuda.device_count():
            raise SolverError(f"GPU {index} does not exist ({torch.cuda.device_count()} "
                              "visible)", hint="see `caffe2torch device_query`")
        log.info(f"Use GPU with device ID {index}", "caffe.cpp:0")
        return torch.device("cuda", index)
    return want


def default_workers(device: torch.device, world_size: int = 1) -> int:
    """Data worker processes when none are asked for: on a GPU, the cores this process's
    share of the machine has, up to 4, so that decoding keeps up with the device (Caffe
    prefetches in a background thread); on the CPU none, as the net's own threads need
    the cores."""
    if device.type != "cuda":
        return 0
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (
        os.cpu_count() or 1)
    return max(1, min(4, cores // max(world_size, 1) - 1))


__all__ = ["default_workers", "device_flag", "gpu_ids", "resolve_device"]
