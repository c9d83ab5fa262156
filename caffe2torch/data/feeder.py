"""Batches for a net's data layers, in Caffe's order: ``DataFeeder(layers, phase)``.

Each data layer (ImageData, Data, HDF5Data) becomes a Source; sources are read in groups
that share one IndexStream. Several data layers with the same batch size (e.g. ``data`` and
``data_p`` reading ``train1.txt`` / ``train2.txt`` for a Siamese net) form one aligned
group by default: they draw the same row order (one shuffle for all), must have the same
number of rows, and a row that cannot be read in one of them is dropped from all of them.
(Caffe shuffles each layer on its own, which silently breaks such pairs.)

Rows are written straight into the batch arrays (no per-row array, no stacking copy). With
``num_workers > 0`` rows are decoded in worker processes (caffe2torch.data.workers) into
shared batch buffers that are reused; the row order and every random choice (crop offsets,
mirroring) are fixed in the main process first, so the batches are the same as with
``num_workers=0``.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import numpy as np
import torch

from caffe2torch.data.order import IndexStream
from caffe2torch.data.rows import BatchBuilder, BufferPool, RowResult, Slots, load_row
from caffe2torch.data.sources import SOURCE_TYPES, Source, make_source
from caffe2torch.data.workers import WorkerPool
from caffe2torch.errors import DataError


class _Group:
    """Sources read row-aligned from one stream."""

    def __init__(self, sources: list[Source], phase: str, rng: np.random.Generator,
                 rank: int, world_size: int, num_workers: int) -> None:
        self.sources = sources
        first = sources[0]
        self.batch_size = first.batch_size
        segments = next((s.segments() for s in sources if len(s.segments()) > 1),
                        first.segments())
        # Every rank walks the whole stream and draws every row's seed, keeping position p
        # when p % world_size == rank: the ranks' shards are disjoint, stay aligned across
        # paired sources, and hold exactly the rows (and crops) of one process's batches.
        shard = phase == "TRAIN" and world_size > 1
        self.rank, self.world_size = (rank, world_size) if shard else (0, 1)
        self.stream = IndexStream(
            segments,
            shuffle=any(s.shuffle for s in sources),
            rng=rng,
            rand_skip=next((s.rand_skip for s in sources if s.rand_skip), 0),
            what=f"layer '{first.layer}'",
        )
        self.rng = rng
        self.offset = 0  # stream positions passed, all ranks counted
        self.positions = 0  # stream positions handed out
        self.num_workers = num_workers
        self.plan = self._plan()
        # the batch's array shapes (per source, per top), known after the first batch
        self.shapes: list[list[tuple[int, ...]]] | None = None
        self.workers: WorkerPool | None = None  # started after the first batch
        self.pending: list[RowResult] = []  # rows of a chunk that the last batch left
        self.pool = BufferPool(keep=3 * sum(len(s.tops) for s in sources))  # 3 batches

    def _plan(self) -> Iterator[tuple[int, int]]:
        while True:
            index = next(self.stream)
            seed = int(self.rng.integers(2**63))
            mine = self.offset % self.world_size == self.rank
            self.offset += 1
            if mine:
                self.positions += 1
                yield index, seed

    @property
    def streaming(self) -> bool:
        """Whether worker processes are reading ahead (the plan is theirs)."""
        return self.workers is not None

    def start_workers(self) -> None:
        if self.num_workers and self.workers is None and self.shapes is not None:
            self.workers = WorkerPool(self.sources, self.num_workers, self.batch_size,
                                      self.plan, self.shapes)

    def next_row(self, slots: Slots | None) -> RowResult:
        """The next planned row: loaded here into ``slots``, or taken from the workers."""
        if self.workers is None:
            index, seed = next(self.plan)
            return load_row(self.sources, index, seed, slots)
        if not self.pending:
            self.pending = list(self.workers.next_chunk().unpack())
        return self.pending.pop(0)

    def close(self) -> None:
        if self.workers is not None:
            self.workers.close()
            self.workers = None
        self.pending = []
        for s in self.sources:
            s.close()


class DataFeeder:
    """Batches ``{top name: tensor}`` for the data layers of a net.

    ``layers``: the data-layer LayerParameters (V2 types; other layers are refused), for
    ``phase`` (TRAIN: random crops; both phases: mirroring when asked, as in Caffe).
    ``cwd``: the folder relative paths start from (default: the working directory).
    ``seed``: shuffles, rand_skip, crops and mirrors; None draws one (``self.seed``).
    ``skip_bad``: a row whose image cannot be read is skipped with a warning (counted in
    ``skipped``) instead of raising DataError.
    ``aligned``: None reads layers with equal batch sizes as one aligned group, False
    reads every layer on its own (Caffe's behaviour), True insists on one group.
    ``rank`` / ``world_size``: TRAIN-phase rows of every data layer are dealt out to
    parallel solvers as Caffe's Skip() does for Data and HDF5Data: position ``p`` of the
    one shared order goes to rank ``p % world_size``.
    ``extras``: {layer name: {dotted path: value}} of the fork fields the reader kept for
    each layer (runtime.feeding.layer_extras): a fork's Data ``shuffle``.
    """

    def __init__(
        self,
        layers: Iterable[Any],
        phase: str = "TRAIN",
        *,
        cwd: str | os.PathLike[str] | None = None,
        num_workers: int = 0,
        pin_memory: bool = False,
        seed: int | None = None,
        skip_bad: bool = False,
        aligned: bool | None = None,
        rank: int = 0,
        world_size: int = 1,
        extras: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> None:
        phase = str(phase).upper()
        if num_workers < 0:
            raise DataError(f"num_workers must be >= 0, got {num_workers}")
        if phase not in ("TRAIN", "TEST"):
            raise DataError(f"phase must be TRAIN or TEST, not {phase!r}")
        self.phase = phase
        self.cwd = os.fspath(cwd) if cwd is not None else os.getcwd()
        self.seed = int(seed) if seed is not None else int(
            np.random.SeedSequence().generate_state(1, np.uint64)[0] >> 1)
        self.skip_bad = skip_bad
        self.pin_memory = pin_memory and torch.cuda.is_available()
        self.skipped = 0
        self.skipped_rows: list[str] = []
        # layer name -> the row indices (list line, record, HDF5 row) of the last batch
        self.last_indices: dict[str, list[int]] = {}
        extras = extras or {}
        self.sources = [make_source(layer, phase, self.cwd, extras.get(layer.name))
                        for layer in layers]
        if not self.sources:
            raise DataError("no data layer to read")
        seen: dict[str, str] = {}
        for s in self.sources:
            for top in s.tops:
                if top in seen:
                    raise DataError(f"layers '{seen[top]}' and '{s.layer}' both produce "
                                    f"top '{top}'")
                seen[top] = s.layer
        self.tops = [t for s in self.sources for t in s.tops]
        groups = self._group(aligned)
        self.groups = [
            _Group(g, phase, np.random.default_rng([self.seed, k]), rank, world_size,
                   num_workers)
            for k, g in enumerate(groups)
        ]

    @classmethod
    def from_net(cls, net: Any, phase: str = "TRAIN", **kw: Any) -> DataFeeder:
        """The data layers of a NetParameter (V2) that exist in ``phase``."""
        from caffe2torch.ir.netstate import NetState, layer_included

        state = NetState.of(phase)
        layers = [ly for ly in net.layer if ly.type in SOURCE_TYPES
                  and layer_included(ly, state)]
        return cls(layers, phase, **kw)

    def _group(self, aligned: bool | None) -> list[list[Source]]:
        sources = self.sources
        if aligned is False or len(sources) == 1:
            return [[s] for s in sources]
        sizes = {s.batch_size for s in sources}
        if len(sizes) > 1:
            if aligned:
                raise DataError("aligned data layers need one batch_size, got " + ", ".join(
                    f"'{s.layer}': {s.batch_size}" for s in sources))
            return [[s] for s in sources]
        first = sources[0]
        for other in sources[1:]:
            if len(other) != len(first):
                raise DataError(
                    f"paired data layers differ in length: '{first.layer}' reads "
                    f"{len(first)} rows from {first.source!r}, '{other.layer}' reads "
                    f"{len(other)} rows from {other.source!r}", path=other.source,
                    hint="row i of each source forms one example (a Siamese pair), so the "
                         "sources must have the same number of rows: write them from one "
                         "list of pairs (`caffe2torch pairs` does). Caffe would read each "
                         "on its own and the pairs would fall out of step at the first wrap "
                         "(in Python, DataFeeder(..., aligned=False) reads them so)")
        return [list(sources)]

    # ---------------------------------------------------------------- batches

    def _batch(self, group: _Group) -> dict[str, torch.Tensor]:
        size = group.batch_size
        group.start_workers()
        if group.workers is not None and not group.pending:
            chunk = group.workers.next_chunk()
            if chunk.is_batch(size):  # the usual case: the slot is the batch as it is
                return self._output(group, chunk.tensors(), [r[0] for r in chunk.results])
            group.pending = list(chunk.unpack())
        builder = BatchBuilder(group.sources, size, pool=group.pool)
        indices: list[int] = []
        tries = 0
        limit = max(len(group.sources[0]), size)
        while not builder.full:
            slots = builder.slots()
            index, got, err = group.next_row(slots)
            if got is not None:
                builder.add(got, slots, index)
                indices.append(index)
                tries = 0
                continue
            assert err is not None
            message, path, line, hint = err
            if not self.skip_bad:
                raise DataError(message, path=path, line=line, hint=hint)
            where = f"{path}:{line}" if line is not None else str(path)
            self.skipped += 1
            self.skipped_rows.append(f"{where}: {message}")
            warnings.warn(f"skipped row ({where}): {message}", stacklevel=3)
            tries += 1
            if tries > limit:
                raise DataError("every row of the data failed to load", path=path,
                                hint="check root_folder and the image paths")
        assert builder.arrays is not None
        if group.shapes is None:
            group.shapes = [[tuple(a.shape) for a in per_source]
                            for per_source in builder.arrays]
        return self._output(group, builder.tensors(), indices)

    def _output(self, group: _Group, tensors: list[list[torch.Tensor]],
                indices: list[int]) -> dict[str, torch.Tensor]:
        out: dict[str, torch.Tensor] = {}
        for src, per_source in zip(group.sources, tensors):
            self.last_indices[src.layer] = indices
            for top, tensor in zip(src.tops, per_source):
                out[top] = tensor.pin_memory() if self.pin_memory else tensor
        return out

    def next_batch(self) -> dict[str, torch.Tensor]:
        """The next batch of every top (one forward of Caffe's data layers)."""
        batch: dict[str, torch.Tensor] = {}
        for group in self.groups:
            batch.update(self._batch(group))
        return {top: batch[top] for top in self.tops}

    def skip_batches(self, n: int) -> None:
        """Move on by ``n`` batches without reading them: the row order and the per-row
        random choices advance exactly as ``n`` calls of next_batch would (rows that would
        fail to load aside). Resuming a run uses it to continue where the data stood."""
        for group in self.groups:
            if group.streaming:  # the workers have planned ahead: read through
                for _ in range(n):
                    self._batch(group)
                continue
            for _ in range(n * group.batch_size):
                next(group.plan)

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        return self

    def __next__(self) -> dict[str, torch.Tensor]:
        return self.next_batch()

    def close(self) -> None:
        for g in self.groups:
            g.close()

    def __enter__(self) -> DataFeeder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = ["DataFeeder"]
