"""Worker processes that decode planned rows straight into a ring of shared batch buffers.

torch's DataLoader sends every batch through a new shared-memory segment; creating and
first touching one of tens of MB costs about as much as decoding the images that fill it
(17 ms for an AlexNet batch of 32 on a 2-core machine, 0.5 ms to refill a segment already
mapped). Here the main process owns the buffers ("slots", torch shared storage) and reuses
a slot once nothing in the main process holds the batch made from it (CPython's reference
count on the slot's arrays, as in rows.BufferPool).

Each worker has its own task queue: ``(sequence, slot id, slot tensors the first time the
worker sees the slot, planned rows)``. It loads the rows into the slot and answers on the
shared result queue with each row's result; the main process hands the chunks out in plan
order, so the batches are those of the main process alone.
"""

from __future__ import annotations

import queue
import sys
import traceback
import weakref
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch
import torch.multiprocessing as mp

from caffe2torch.data.rows import Chunk, RowResult, load_chunk
from caffe2torch.data.sources import Source
from caffe2torch.errors import CaffeError, DataError

# how often a waiting main process checks that its workers are alive (seconds)
_POLL = 5.0


def _worker_main(sources: list[Source], tasks: Any, results: Any) -> None:
    torch.set_num_threads(1)
    slots: dict[int, list[list[np.ndarray]]] = {}
    while True:
        task = tasks.get()
        if task is None:
            return
        seq, slot_id, tensors, items = task
        if tensors is not None:
            slots[slot_id] = [[t.numpy() for t in per_source] for per_source in tensors]
        try:
            rows, buffered = load_chunk(sources, items, slots[slot_id])
            results.put((seq, rows, buffered, None))
        except CaffeError as e:
            results.put((seq, None, None, ("caffe", type(e).__name__, e.message, e.path,
                                           e.line, e.hint)))
        except Exception:  # a bug or an unexpected library error: report it whole
            results.put((seq, None, None, ("other", traceback.format_exc())))


def _context() -> Any:
    """Workers start from a forkserver: a process forked from the caller would inherit the
    state of its other threads (an OpenCV pool or a lock held mid-decode by a reader
    thread), which hung workers. The server imports this module once, so that each worker
    starts without importing torch again."""
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload([__name__])
    return ctx


class _Slot:
    """One set of shared batch buffers (per source, per top)."""

    def __init__(self, shapes: list[list[tuple[int, ...]]]) -> None:
        self.tensors = [[torch.empty(shape, dtype=torch.float32).share_memory_()
                         for shape in per_source] for per_source in shapes]
        self.arrays = [[t.numpy() for t in per_source] for per_source in self.tensors]
        self.busy = False  # planned for a worker, its chunk not handed out yet
        self.baseline = self._references()

    def _references(self) -> list[int]:
        return [sys.getrefcount(a) for per_source in self.arrays for a in per_source]

    def free(self) -> bool:
        """Not planned, and nothing holds a batch or row of it any more."""
        return not self.busy and self._references() == self.baseline


class WorkerPool:
    """``num_workers`` processes loading the rows of ``plan`` in chunks of ``batch_size``
    into shared slots of ``shapes`` (per source, per top: the batch's array shapes)."""

    def __init__(self, sources: Sequence[Source], num_workers: int, batch_size: int,
                 plan: Iterator[tuple[int, int]], shapes: list[list[tuple[int, ...]]]) -> None:
        self.batch_size = batch_size
        self.plan = plan
        self.shapes = shapes
        self.ahead = 2 * num_workers  # chunks planned beyond the one being waited for
        ctx = _context()
        self.results = ctx.Queue()
        self.tasks = [ctx.Queue() for _ in range(num_workers)]
        self.workers = [
            ctx.Process(target=_worker_main, args=(list(sources), q, self.results),
                        daemon=True, name=f"caffe2torch-data-{i}")
            for i, q in enumerate(self.tasks)
        ]
        for w in self.workers:
            w.start()
        # a feeder dropped without close() still stops its workers
        self._finalizer = weakref.finalize(self, _shutdown, self.tasks, self.results,
                                           self.workers)
        self.slots: list[_Slot] = []
        self.known: list[set[int]] = [set() for _ in self.workers]  # slots each worker has
        self.sent = 0  # chunks planned
        self.handed = 0  # chunks handed out
        self.planned: dict[int, int] = {}  # sequence -> slot id
        self.arrived: dict[int, tuple[list[RowResult], list[bool]]] = {}

    def _slot(self) -> int:
        for i, slot in enumerate(self.slots):
            if slot.free():
                return i
        self.slots.append(_Slot(self.shapes))
        return len(self.slots) - 1

    def _send(self) -> None:
        items = [next(self.plan) for _ in range(self.batch_size)]
        slot_id = self._slot()
        slot = self.slots[slot_id]
        slot.busy = True
        worker = self.sent % len(self.workers)
        first = slot_id not in self.known[worker]
        self.known[worker].add(slot_id)
        self.tasks[worker].put((self.sent, slot_id, slot.tensors if first else None, items))
        self.planned[self.sent] = slot_id
        self.sent += 1

    def next_chunk(self) -> Chunk:
        """The chunk of the next ``batch_size`` planned rows."""
        while self.sent <= self.handed + self.ahead:
            self._send()
        seq = self.handed
        while seq not in self.arrived:
            self._receive()
        rows, buffered = self.arrived.pop(seq)
        slot = self.slots[self.planned.pop(seq)]
        slot.busy = False
        self.handed += 1
        return Chunk(rows, buffered, slot.arrays)

    def _receive(self) -> None:
        try:
            seq, rows, buffered, error = self.results.get(timeout=_POLL)
        except queue.Empty:
            dead = [w for w in self.workers if not w.is_alive()]
            if dead:
                raise DataError(f"data worker {dead[0].name} died (exit code "
                                f"{dead[0].exitcode})", hint="rerun with num_workers=0 "
                                "to see the error in the main process") from None
            return
        if error is not None:
            raise _rebuilt(error)
        self.arrived[seq] = (rows, buffered)

    def close(self) -> None:
        self._finalizer()
        self.workers = []
        self.slots = []


def _shutdown(tasks: list[Any], results: Any, workers: list[Any]) -> None:
    for q in tasks:
        q.put(None)
    for w in workers:
        w.join(timeout=5)
        if w.is_alive():
            w.terminate()
    for q in (*tasks, results):
        q.close()
        q.join_thread()


def _rebuilt(error: tuple[Any, ...]) -> Exception:
    """The exception a worker reported, raised again in the main process."""
    if error[0] == "caffe":
        _, name, message, path, line, hint = error
        import caffe2torch.errors as errors

        kind: Callable[..., Exception] = getattr(errors, name, DataError)
        try:
            return kind(message, path=path, line=line, hint=hint)
        except TypeError:
            return DataError(message, path=path, line=line, hint=hint)
    return RuntimeError(f"a data worker failed:\n{error[1]}")


__all__ = ["WorkerPool"]
