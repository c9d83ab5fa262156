"""Data-parallel training over several processes, as Caffe's multi-GPU training does
(src/caffe/parallel.cpp, tools/caffe.cpp ``-gpu 0,1`` / ``-gpu all``).

Caffe's rule, which we follow: every solver runs the full ``batch_size`` of the prototxt, so
N processes train with an effective batch of N x batch_size; after each iteration's
forward/backward passes the gradients are summed over the solvers and scaled by 1/N
(NCCL::on_gradients_ready), then every solver applies the same update. The root solver
(rank 0) starts everyone from its weights (broadcast), and alone displays, tests and
snapshots.

The gradients are all-reduced here once per iteration, after the ``iter_size`` passes
and before the update, over one flat buffer, rather than by wrapping the net in
DistributedDataParallel: Caffe's update is a separate step over its own learnable-param
list (shared blobs once, ``lr_mult: 0`` blobs left out), which a flat all-reduce of exactly
that list reproduces without DDP's bucket hooks, unused-parameter search or per-pass
reductions. The arithmetic is the same as DDP's (sum, then divide by the world size).

TRAIN data is sharded: every rank walks the same seeded row order and keeps positions
``p % world_size == rank`` (see caffe2torch.data.feeder), so paired list files stay
aligned and two ranks with batch B see exactly the rows of one process with batch 2B.

Launching: ``caffe2torch train -solver s.prototxt -gpu all`` (or ``-gpu 0,1``) with more
than one device starts itself again under ``torch.distributed.run``, one process per GPU
(NCCL). ``torchrun --nproc_per_node 2 -m caffe2torch train -solver s.prototxt
--distributed-backend gloo`` trains on the CPU with two processes.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch
import torch.distributed as dist

from caffe2torch.errors import SolverError

BACKENDS = ("nccl", "gloo")
# what the ranks must agree on each iteration (the largest wins)
ACTIONS = {None: 0, "snapshot": 1, "stop": 2}


def launched_by_torchrun() -> bool:
    """True inside a process that torch.distributed.run started with more than one rank."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1 and "RANK" in os.environ


@dataclass
class Distributed:
    """This process's place in a data-parallel run (an initialised default process group)."""

    rank: int
    world_size: int
    local_rank: int
    backend: str

    @property
    def is_root(self) -> bool:
        return self.rank == 0

    # ------------------------------------------------------------------ collectives

    def broadcast_tensors(self, tensors: Iterable[torch.Tensor]) -> None:
        """Every rank takes rank 0's values (Caffe's P2PSync / NCCL::Broadcast of the
        root solver's weights)."""
        with torch.no_grad():
            for t in _unique(tensors):
                dist.broadcast(t.data, src=0)

    def average_gradients(self, params: Sequence[torch.Tensor]) -> None:
        """Sum each param's ``.grad`` over the ranks and divide by the world size, in one
        flat buffer per device and dtype. A missing ``.grad`` counts as zeros (and is
        filled in), so every rank reduces the same layout."""
        groups: dict[tuple[torch.device, torch.dtype], list[torch.Tensor]] = {}
        for p in params:
            if not p.requires_grad:
                continue
            if p.grad is None:
                p.grad = torch.zeros_like(p)
            groups.setdefault((p.grad.device, p.grad.dtype), []).append(p)
        scale = 1.0 / self.world_size
        for members in groups.values():
            flat = torch.cat([p.grad.reshape(-1) for p in members])  # type: ignore[union-attr]
            dist.all_reduce(flat, op=dist.ReduceOp.SUM)
            flat.mul_(scale)
            offset = 0
            for p in members:
                grad = p.grad
                assert grad is not None
                n = grad.numel()
                grad.copy_(flat[offset:offset + n].view_as(grad))
                offset += n

    def agree(self, value: int, device: torch.device) -> int:
        """The largest ``value`` over the ranks (an action or a flag every rank must act
        on at the same iteration)."""
        t = torch.tensor([int(value)], dtype=torch.int64, device=device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return int(t.item())

    def agree_action(self, action: str | None, device: torch.device) -> str | None:
        """The strongest action any rank was asked for (stop > snapshot > none)."""
        code = self.agree(ACTIONS.get(action, 0), device)
        return next(k for k, v in ACTIONS.items() if v == code)

    def barrier(self) -> None:
        """Every rank waits here for the others: at the end of a run, so that no rank
        tears the group down while rank 0 still writes the final snapshot (gloo aborts a
        rank whose peer is still busy when the group is destroyed)."""
        if dist.is_initialized():
            dist.barrier()

    def close(self) -> None:
        if dist.is_initialized():
            dist.destroy_process_group()


def _unique(tensors: Iterable[torch.Tensor]) -> list[torch.Tensor]:
    seen: set[int] = set()
    out = []
    for t in tensors:
        if id(t) not in seen:
            seen.add(id(t))
            out.append(t)
    return out


def rank_device_request(gpus: Sequence[int] | None, local_rank: int) -> str | None:
    """The device this rank asks for: ``cuda:<gpus[local_rank]>`` (``-gpu 0,2``), the
    ``local_rank``-th visible GPU for ``-gpu all`` (``gpus`` empty), or None (the CPU,
    unless the solver asks for a GPU)."""
    if gpus is None:
        return None
    ids = list(gpus) or list(range(max(1, torch.cuda.device_count())))
    if local_rank >= len(ids):
        raise SolverError(f"process {local_rank} has no GPU: -gpu names {len(ids)} device(s)",
                          hint="start as many processes as GPUs (--nproc_per_node)")
    return f"cuda:{ids[local_rank]}"


def processes_for(gpus: Sequence[int] | None) -> int:
    """How many processes ``-gpu`` asks for: one per GPU it names (all of them for
    ``-gpu all``); one without -gpu or without CUDA."""
    if gpus is None or not torch.cuda.is_available():
        return 1
    return len(gpus) if gpus else torch.cuda.device_count()


def init_from_env(backend: str | None, device: torch.device) -> Distributed | None:
    """Join the process group torch.distributed.run described in the environment (RANK,
    WORLD_SIZE, LOCAL_RANK, MASTER_ADDR/PORT); None when this is a single process.
    ``backend`` defaults to NCCL on a GPU, gloo on the CPU."""
    if not launched_by_torchrun():
        return None
    chosen = backend or ("nccl" if device.type == "cuda" else "gloo")
    if chosen not in BACKENDS:
        raise SolverError(f"unknown distributed backend {chosen!r}",
                          hint=f"use one of {', '.join(BACKENDS)}")
    if chosen == "nccl" and device.type != "cuda":
        raise SolverError("the NCCL backend needs a GPU per process",
                          hint="on the CPU use --distributed-backend gloo")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        try:
            dist.init_process_group(backend=chosen)
        except (RuntimeError, ValueError) as e:
            raise SolverError(f"cannot join the distributed run: {e}",
                              hint="start it with torchrun (torch.distributed.run)") from None
    return Distributed(rank=dist.get_rank(), world_size=dist.get_world_size(),
                       local_rank=int(os.environ.get("LOCAL_RANK", "0")), backend=chosen)


def relaunch(argv: Sequence[str], nproc: int) -> int:
    """Run ``caffe2torch ARGV`` again as ``nproc`` processes under torch.distributed.run on
    this machine; returns its exit code."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
           f"--nproc_per_node={nproc}", "-m", "caffe2torch", *argv]
    try:
        return subprocess.call(cmd)
    except KeyboardInterrupt:  # torchrun forwards the signal to the workers
        return 130


__all__ = ["BACKENDS", "Distributed", "init_from_env", "launched_by_torchrun", "processes_for",
           "rank_device_request", "relaunch"]
