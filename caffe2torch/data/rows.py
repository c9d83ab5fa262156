"""Rows into batches: loading one planned row of every source of a group, and the batch
buffers rows are written into (no per-row array, no stacking copy).

A row is planned as ``(index, seed)`` by the feeder; its random choices (crop, mirror)
come from ``RowDraws(seed, source number)``, so a row loads to the same values wherever
and whenever it is loaded (main process or worker).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence

import numpy as np
import torch

from caffe2torch.data.order import RowDraws
from caffe2torch.data.sources import BadItemError, Source
from caffe2torch.errors import DataError

# the error of a bad row as plain values: (message, path, line, hint)
RowError = tuple[str, str | None, int | None, str | None]
# (row index, row arrays per source and top or None, the error of a bad row)
RowResult = tuple[int, list[list[np.ndarray]] | None, RowError | None]
# per source, per top: where a row goes (a view of one row of the batch buffers)
Slots = list[list[np.ndarray]]


def load_row(sources: Sequence[Source], index: int, seed: int,
             slots: Slots | None = None) -> RowResult:
    """Row ``index`` of every source (into ``slots`` where a source can write there); a
    row that cannot be read gives its error instead of raising."""
    rows = []
    for k, src in enumerate(sources):
        rng = RowDraws(seed, k) if _is_random(src) else None
        try:
            rows.append(src.load(index, rng, out=slots[k] if slots is not None else None))
        except BadItemError as e:
            return index, None, (e.message, e.path, e.line, e.hint)
    return index, rows, None


def _is_random(src: Source) -> bool:
    transform = getattr(src, "transform", None)
    return bool(transform is not None and transform.random)


class BufferPool:
    """Batch arrays handed out before, reused once nothing else holds them. A tensor made
    by torch.from_numpy, and every view of it, keeps a reference to its array, so
    CPython's reference count tells when the consumer has let go of a batch. A fresh
    batch (tens of MB) pays a page fault at the first write of every page, about a third
    of the time spent putting rows into it."""

    def __init__(self, keep: int = 4) -> None:
        self.keep = keep
        self.arrays: list[np.ndarray] = []

    def take(self, shape: tuple[int, ...]) -> np.ndarray:
        for i in range(len(self.arrays)):
            # references: the list, and getrefcount's argument
            if self.arrays[i].shape == shape and sys.getrefcount(self.arrays[i]) == 2:
                return self.arrays[i]
        array = np.empty(shape, dtype=np.float32)
        self.arrays.append(array)
        if len(self.arrays) > self.keep:
            self.arrays.pop(0)  # still in use: left to its holder
        return array


class BatchBuilder:
    """One batch of a group, filled row by row: per (source, top) a float32 array of
    (size, *row shape), taken from ``pool`` (or given as ``arrays``) when the first row
    shows the shapes. A source writes its row straight into the slots it is handed; what
    it returns instead is copied in."""

    def __init__(self, sources: Sequence[Source], size: int, *,
                 pool: BufferPool | None = None,
                 arrays: list[list[np.ndarray]] | None = None) -> None:
        self.sources = sources
        self.size = size
        self.pool = pool
        self.arrays = arrays
        self.count = 0

    @property
    def full(self) -> bool:
        return self.count == self.size

    def slots(self) -> Slots | None:
        if self.arrays is None:
            return None
        return [[a[self.count] for a in per_source] for per_source in self.arrays]

    def _allocate(self, row: list[list[np.ndarray]]) -> list[list[np.ndarray]]:
        def make(shape: tuple[int, ...]) -> np.ndarray:
            if self.pool is not None:
                return self.pool.take(shape)
            return np.empty(shape, dtype=np.float32)

        return [[make((self.size, *np.shape(x))) for x in per_source] for per_source in row]

    def fits(self, row: list[list[np.ndarray]]) -> bool:
        """Whether ``row`` has the shapes of this batch (always, for the first row)."""
        if self.arrays is None:
            return True
        return all(np.shape(x) == batch.shape[1:] for per_source, batches in
                   zip(row, self.arrays) for x, batch in zip(per_source, batches))

    def add(self, row: list[list[np.ndarray]], slots: Slots | None,
            index: int | None = None) -> None:
        """Put ``row`` (row ``index`` of the sources, when known) at the next position
        (DataError if its shapes differ from the batch's)."""
        if self.arrays is None:
            self.arrays = self._allocate(row)
        for k, per_source in enumerate(row):
            for t, x in enumerate(per_source):
                if slots is not None and x is slots[k][t]:
                    continue  # the source wrote it in place
                batch = self.arrays[k][t]
                if np.shape(x) != batch.shape[1:]:
                    src = self.sources[k]
                    shapes = sorted({tuple(batch.shape[1:]), tuple(np.shape(x))})
                    sizes = ", ".join("x".join(map(str, s)) for s in shapes)
                    which = ""
                    if index is not None:  # name the row (the batch's size is its first's)
                        which = (f": {src.describe(index)} is {'x'.join(map(str, np.shape(x)))}"
                                 f", the batch's first image "
                                 f"{'x'.join(map(str, batch.shape[1:]))}")
                    raise DataError(
                        f"layer '{src.layer}': the images of one batch differ in size "
                        f"({sizes}){which}", path=src.source,
                        hint="set new_height/new_width (or crop_size), or batch_size: 1")
                batch[self.count] = x
        self.count += 1

    def tensors(self) -> list[list[torch.Tensor]]:
        """The filled rows as tensors (per source, per top), sharing the arrays."""
        assert self.arrays is not None
        return [[torch.from_numpy(a[: self.count]) for a in per_source]
                for per_source in self.arrays]


class Chunk:
    """The rows of one batch-sized piece of the plan as a worker loaded them: each row's
    result in order; the good rows written into the slot's arrays (``buffered``), in
    order; a row whose shapes did not fit them kept as its own arrays."""

    def __init__(self, results: list[RowResult], buffered: list[bool],
                 arrays: list[list[np.ndarray]] | None) -> None:
        self.results = results
        self.buffered = buffered
        self.arrays = arrays

    def is_batch(self, size: int) -> bool:
        """Every row good and buffered: the arrays are a whole batch as they are."""
        return len(self.results) == size and all(self.buffered)

    def tensors(self) -> list[list[torch.Tensor]]:
        assert self.arrays is not None
        return [[torch.from_numpy(a) for a in per_source] for per_source in self.arrays]

    def unpack(self) -> Iterator[RowResult]:
        j = 0
        for (index, got, err), buffered in zip(self.results, self.buffered):
            if buffered:
                assert self.arrays is not None
                got = [[a[j] for a in per_source] for per_source in self.arrays]
                j += 1
            yield index, got, err


def load_chunk(sources: Sequence[Source], items: Sequence[tuple[int, int]],
               arrays: list[list[np.ndarray]]) -> tuple[list[RowResult], list[bool]]:
    """Load planned rows into ``arrays`` (a slot of batch buffers, size >= len(items)),
    good rows one after another. Returns each row's result (a buffered row's arrays as
    None) and whether it went into the buffers."""
    builder = BatchBuilder(sources, len(items), arrays=arrays)
    results: list[RowResult] = []
    buffered: list[bool] = []
    for index, seed in items:
        slots = builder.slots()
        result = load_row(sources, index, seed, slots)
        got = result[1]
        fits = got is not None and builder.fits(got)
        if fits:
            assert got is not None
            builder.add(got, slots, index)
            result = (result[0], None, None)
        elif got is not None and slots is not None:
            # a top written into the slot before another top did not fit: the slot's row
            # is the next row's, so the misfit keeps its own copy
            got = [[np.array(x) if x is slots[k][t] else x for t, x in enumerate(per_source)]
                   for k, per_source in enumerate(got)]
            result = (result[0], got, None)
        results.append(result)
        buffered.append(fits)
    return results, buffered


__all__ = ["BatchBuilder", "BufferPool", "Chunk", "RowError", "RowResult", "Slots",
           "load_chunk", "load_row"]
