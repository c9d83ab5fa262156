"""Batches copied to a GPU one step ahead: the next batch, in pinned (page-locked) host
memory, is copied ``non_blocking`` on a side stream while the current step computes, as
Caffe's BasePrefetchingDataLayer copies its prefetched batch to the device on its own
stream (``prefetch_current_->data_.data().get()->async_gpu_push(stream)``).

Used by BatchStream for a net on a GPU fed by data layers. The batches and their order
are the feeder's: the next one is only drawn earlier. The compute stream waits for the
copy before the batch is handed out, and each tensor is marked as used on that stream so
that its memory is not reused while the step still reads it.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

Batch = dict[str, torch.Tensor]


def pinned(t: torch.Tensor) -> torch.Tensor:
    """``t`` in page-locked host memory (itself when it is already there)."""
    return t if t.is_pinned() else t.pin_memory()


def _used_on(t: torch.Tensor, stream: torch.cuda.Stream) -> None:
    t.record_stream(stream)


class CopyAhead:
    """``next()``: the batch ``draw()`` gave, on ``device``; the one after it is already
    on its way when it returns."""

    def __init__(self, draw: Callable[[], Batch], device: torch.device) -> None:
        self.draw = draw
        self.device = device
        self.stream = torch.cuda.Stream(device)
        self._ahead: Batch | None = None

    @property
    def holding(self) -> bool:
        """Whether a batch has been drawn and not yet handed out."""
        return self._ahead is not None

    def _issue(self) -> None:
        host = self.draw()
        with torch.cuda.stream(self.stream):
            self._ahead = {k: pinned(v).to(self.device, non_blocking=True)
                           for k, v in host.items()}

    def next(self) -> Batch:
        if self._ahead is None:
            self._issue()
        batch, self._ahead = self._ahead, None
        assert batch is not None
        current = torch.cuda.current_stream(self.device)
        current.wait_stream(self.stream)
        for t in batch.values():
            _used_on(t, current)
        self._issue()  # the next one copies while the caller computes on this one
        return batch

    def drop(self) -> bool:
        """Forget the batch drawn ahead (a skip counts it); True when there was one."""
        held, self._ahead = self._ahead, None
        return held is not None


__all__ = ["CopyAhead", "pinned"]
