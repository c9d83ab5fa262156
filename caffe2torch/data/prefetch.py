"""A DataFeeder read one batch ahead in a background thread, as Caffe's data layers do
(BasePrefetchingDataLayer's InternalThread fills the next batch while the net runs).

Decoding (OpenCV, numpy copies) releases the GIL for most of its time, so the thread
overlaps the net's forward/backward. The batches and their order are the feeder's own:
the thread only calls ``next_batch`` earlier, and one call at a time.

Chosen automatically on the CPU when no worker processes are asked for
(:func:`prefetch_wanted`): with at least two cores and a batch that takes long enough to
read that overlapping pays for the thread hand-off.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import torch

# A batch read faster than this gains less from overlap than the hand-off costs.
MIN_BATCH_SECONDS = 0.002


def prefetch_wanted(cores: int, batch_seconds: float) -> bool:
    """Read ahead in a thread: more than one core, and a batch costing
    ``batch_seconds`` (the first batch's read time) of at least MIN_BATCH_SECONDS."""
    return cores >= 2 and batch_seconds >= MIN_BATCH_SECONDS


class PrefetchingFeeder:
    """``feeder`` (a DataFeeder) with its next batch read in a thread while the caller
    works; same ``tops``, ``next_batch``, ``skip_batches``, ``close``."""

    def __init__(self, feeder: Any) -> None:
        self.feeder = feeder
        self.tops = feeder.tops
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="c2t-prefetch")
        self._pending: Future[dict[str, torch.Tensor]] | None = None

    def __getattr__(self, name: str) -> Any:  # the feeder's other attributes
        return getattr(self.__dict__["feeder"], name)

    def _start(self) -> None:
        self._pending = self._pool.submit(self.feeder.next_batch)

    def next_batch(self) -> dict[str, torch.Tensor]:
        pending, self._pending = self._pending, None
        batch = pending.result() if pending is not None else self.feeder.next_batch()
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
