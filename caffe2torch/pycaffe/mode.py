"""Caffe's global mode (Caffe::mode, device, random seed, solver count/rank) for pycaffe.

``set_mode_gpu()`` makes nets built afterwards live on ``cuda:<set_device>``; blobs there
follow SyncedMemory (see caffe2torch.pycaffe.blob). Without a GPU, set_mode_gpu is refused
with a clear message at the next net's build, as Caffe's CPU-only build refuses it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np
import torch

from caffe2torch.errors import CaffeError

TRAIN, TEST = 0, 1  # caffe_pb2.Phase


@dataclass
class _Mode:
    gpu: bool = False
    device: int = 0
    solver_count: int = 1
    solver_rank: int = 0
    multiprocess: bool = False


MODE = _Mode()


def set_mode_cpu() -> None:
    MODE.gpu = False


def set_mode_gpu() -> None:
    MODE.gpu = True


def set_device(device_id: int) -> None:
    MODE.device = int(device_id)


def current_device() -> torch.device:
    """Where the next net is built."""
    if not MODE.gpu:
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise CaffeError("set_mode_gpu(): no CUDA device is available to this process",
                         hint="call caffe.set_mode_cpu(), or run on a machine with a GPU")
    if MODE.device >= torch.cuda.device_count():
        raise CaffeError(f"set_device({MODE.device}): only {torch.cuda.device_count()} "
                         "CUDA device(s) visible")
    return torch.device("cuda", MODE.device)


def set_random_seed(seed: int) -> None:
    """Caffe::set_random_seed: the generators fillers, dropout and data shuffling use."""
    torch.manual_seed(int(seed))
    np.random.seed(int(seed) % 2**32)
    random.seed(int(seed))


def solver_count() -> int:
    return MODE.solver_count


def set_solver_count(count: int) -> None:
    MODE.solver_count = int(count)


def solver_rank() -> int:
    return MODE.solver_rank


def set_solver_rank(rank: int) -> None:
    MODE.solver_rank = int(rank)


def set_multiprocess(multiprocess: bool) -> None:
    MODE.multiprocess = bool(multiprocess)


def has_nccl() -> bool:
    """Multi-GPU training here goes through torch.distributed (caffe2torch train -gpu all),
    not pycaffe's NCCL object."""
    return False


def phase_name(phase: object) -> str:
    if phase in (TRAIN, "TRAIN", "train"):
        return "TRAIN"
    if phase in (TEST, "TEST", "test"):
        return "TEST"
    raise CaffeError(f"unknown phase {phase!r}", hint="use caffe.TRAIN or caffe.TEST")
