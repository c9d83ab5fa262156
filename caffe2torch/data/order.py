"""The order in which a data layer reads its rows, as Caffe's layers step through them.

Sequential: rows 0, 1, ... N-1, then 0 again, the wrap happening inside a batch when N is
not a multiple of the batch size (lines_id_ / cursor / current_row_ restart). Shuffle: a
new permutation at the start of every epoch, the first one included (ImageData shuffles at
setup and at each wrap); with several files (HDF5Data) the files are permuted, then the
rows inside each file. ``rand_skip``: the first epoch starts at a random row below it.
In TRAIN, Data and HDF5Data deal rows out to parallel solvers: position ``p`` of the stream
goes to rank ``p % world_size`` (DataLayer::Skip).

Caffe's own random generator (boost mt19937 seeded from the solver) is not reproduced:
shuffles and skips draw from a seeded numpy Generator instead, and each row's crop and
mirror from RowDraws over the seed the plan gave that row.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from caffe2torch.errors import DataError


class IndexStream(Iterator[int]):
    """An endless stream of row indices."""

    def __init__(
        self,
        segments: Sequence[int],
        *,
        shuffle: bool = False,
        rng: np.random.Generator | None = None,
        rand_skip: int = 0,
        rank: int = 0,
        world_size: int = 1,
        what: str = "the data",
    ) -> None:
        self.segments = [int(s) for s in segments]
        self.total = sum(self.segments)
        if self.total <= 0:
            raise DataError(f"{what} has no rows")
        if not 0 <= rank < world_size:
            raise DataError(f"rank {rank} is outside world_size {world_size}")
        self.shuffle = shuffle
        self.rng = rng if rng is not None else np.random.default_rng()
        self.rank, self.world_size = rank, world_size
        self.epoch = 0
        self._order = self._epoch_order()
        self._pos = 0
        self._offset = 0  # rows passed, all ranks counted (Caffe's offset_)
        if rand_skip:
            skip = int(self.rng.integers(rand_skip))
            if skip >= self.total:
                raise DataError(f"{what}: rand_skip drew {skip} but there are only "
                                f"{self.total} rows", hint="lower rand_skip")
            self._pos = skip
        self.skipped_at_start = self._pos

    def _epoch_order(self) -> np.ndarray:
        if not self.shuffle:
            return np.arange(self.total)
        starts = np.cumsum([0, *self.segments[:-1]])
        files = self.rng.permutation(len(self.segments))
        return np.concatenate([starts[f] + self.rng.permutation(self.segments[f])
                               for f in files])

    def _advance(self) -> int:
        index = int(self._order[self._pos])
        self._pos += 1
        if self._pos >= self.total:
            self._pos = 0
            self.epoch += 1
            if self.shuffle:
                self._order = self._epoch_order()
        return index

    def __next__(self) -> int:
        while True:
            index = self._advance()
            keep = self._offset % self.world_size == self.rank
            self._offset += 1
            if keep:
                return index

    def take(self, n: int) -> list[int]:
        return [next(self) for _ in range(n)]


__all__ = ["IndexStream"]


_MASK = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15


class RowDraws:
    """The random choices of one row of one source (crop offsets, the mirror coin), from
    the seed the row's plan drew: splitmix64 over (seed, source, draw number). A few
    integer operations per draw, where seeding a numpy Generator per row costs ~15 us, a
    sizeable share of an image's decode. Offers ``integers(high)`` as the transforms use
    it: uniform in [0, high)."""

    __slots__ = ("state",)

    def __init__(self, seed: int, stream: int) -> None:
        self.state = (int(seed) ^ ((int(stream) + 1) * _GOLDEN)) & _MASK

    def integers(self, high: int) -> int:
        self.state = (self.state + _GOLDEN) & _MASK
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
        z ^= z >> 31
        return (z * int(high)) >> 64  # Lemire's multiply-shift: no modulo bias to speak of
