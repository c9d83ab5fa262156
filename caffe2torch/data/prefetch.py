"""A DataFeeder read one batch ahead in a background thread, as Caffe's data layers do
(BasePrefetchingDataLayer's InternalThread fills the next batch while the net runs).

Decoding (OpenCV, numpy copies) releases the GIL for most of its time, so the thread
overlaps the net's forward/backward. The batches and their order are the feeder's own:
the thread only calls ``next_batch`` earlier, and one call at a time.

Chosen automatically on the CPU when no worker processes are asked for
(:func:`prefetch_wanted`): with at least two cores and a batch that takes long enough to
read that overlapping pays for the thread hand-off. The cost is watched as the run goes
(a moving average of each read's CPU time): once batches get cheap, e.g. when ImageData's
decoded-image cache holds every file after the first epoch's early part, they are read
in line, and read ahead again if they get dear. A read in the thread takes a core from
torch's own threads, whose parallel regions then wait for the one that lost its core:
with the cache warm (about 1 ms per MNIST Siamese batch of 2 x 64 rows) the thread cost
the net more than it saved.
"""

from __future__ import annotations

import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import torch

# A batch read faster than this gains less from overlap than the hand-off costs.
MIN_BATCH_SECONDS = 0.002
# weight of the newest read in the moving average of the read cost
_SMOOTHING = 0.1


def prefetch_wanted(cores: int, batch_seconds: float) -> bool:
    """Read ahead in a thread: more than one core, and a batch costing
    ``batch_seconds`` (the first batch's read time) of at least MIN_BATCH_SECONDS."""
    return cores >= 2 and batch_seconds >= MIN_BATCH_SECONDS


class PrefetchingFeeder:
    """``feeder`` (a DataFeeder) with its next batch read in a thread while the caller
    works, as long as reading a batch costs at least MIN_BATCH_SECONDS of CPU time
    (moving average, starting from ``batch_seconds`` or twice the threshold); same
    ``tops``, ``next_batch``, ``skip_batches``, ``close``."""

    def __init__(self, feeder: Any, batch_seconds: float | None = None) -> None:
        self.feeder = feeder
        self.tops = feeder.tops
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="c2t-prefetch")
        self._pending: Future[dict[str, torch.Tensor]] | None = None
        self.read_seconds = 2 * MIN_BATCH_SECONDS if batch_seconds is None else batch_seconds

    def __getattr__(self, name: str) -> Any:  # the feeder's other attributes
        return getattr(self.__dict__["feeder"], name)

    @property
    def ahead(self) -> bool:
        """Whether the next batch is read in the thread (the read cost pays for it)."""
        return self.read_seconds >= MIN_BATCH_SECONDS

    def _read(self) -> dict[str, torch.Tensor]:
        started = time.thread_time()  # this thread's CPU time: the work, not the waits
        batch = self.feeder.next_batch()
        cost = time.thread_time() - started
        self.read_seconds += _SMOOTHING * (cost - self.read_seconds)
        return batch

    def _start(self) -> None:
        self._pending = self._pool.submit(self._read)

    def next_batch(self) -> dict[str, torch.Tensor]:
        pending, self._pending = self._pending, None
        batch = pending.result() if pending is not None else self._read()
        if self.ahead:
            self._start()  # the one after it, while the caller uses this one
        return batch

    def skip_batches(self, n: int) -> None:
        """Move on by ``n`` batches: the one read ahead counts as the first."""
        if n <= 0:
            return
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()
            n -= 1
        if n:
            self.feeder.skip_batches(n)

    def close(self) -> None:
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.exception()  # wait; an error of a batch nobody reads is dropped
        self._pool.shutdown(wait=True)
        self.feeder.close()
