"""The base of every data source (caffe2torch.data.sources): ``load(i)`` gives row ``i``
of every top, without the batch axis; and the error of one unreadable row."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import numpy as np

from caffe2torch.data.transform import Draws
from caffe2torch.errors import DataError


class BadItemError(DataError):
    """One row cannot be read (a missing or undecodable image): skippable on request."""


def _join(cwd: str, path: str) -> str:
    return path if os.path.isabs(path) else os.path.join(cwd, path)


class Source:
    """One data layer. Subclasses set ``source`` (as written), ``batch_size``, ``tops``."""

    type = ""

    def __init__(self, layer: Any, phase: str, cwd: str) -> None:
        self.layer = layer.name
        self.tops = list(layer.top)
        self.phase = phase
        self.cwd = cwd
        self.shuffle = False
        self.rand_skip = 0
        self.source = ""
        self.batch_size = 0

    def take_extras(self, extras: Mapping[str, Any]) -> None:
        """Read the fork fields this source understands (its transform's rectangular crop;
        the build refuses a field no builder reads before any source opens)."""
        transform = getattr(self, "transform", None)
        if transform is not None:
            transform.take_extras(extras)

    def _check_batch(self, batch_size: int) -> None:
        if batch_size <= 0:
            raise DataError(f"layer '{self.layer}': batch_size must be positive, got "
                            f"{batch_size}")
        self.batch_size = int(batch_size)

    def _read_image_list_settings(self, p: Any) -> None:
        """The ImageDataParameter fields every image-list layer reads (ImageData and the
        forks' ImageSegData and ImageLabelmapData): batch_size, source, new_height and
        new_width (both or neither), is_color, root_folder, shuffle, rand_skip."""
        self._check_batch(p.batch_size)
        self.source = p.source
        self.new_height, self.new_width = int(p.new_height), int(p.new_width)
        if (self.new_height > 0) != (self.new_width > 0):
            raise DataError(f"layer '{self.layer}': new_height and new_width must be set "
                            "together (or neither)")
        self.is_color = bool(p.is_color)
        self.root = p.root_folder
        self.shuffle = bool(p.shuffle)
        self.rand_skip = int(p.rand_skip)

    def __len__(self) -> int:
        raise NotImplementedError

    def segments(self) -> list[int]:
        """Row counts of the files the rows come from (a shuffle permutes files, then rows
        inside each file)."""
        return [len(self)]

    def describe(self, index: int) -> str:
        """Where row ``index`` comes from, for messages (``list.txt:12``, ``db[key]``)."""
        return f"{self.source}[{index}]"

    def load(self, index: int, rng: Draws | None = None,
             out: list[np.ndarray] | None = None) -> list[np.ndarray]:
        """Row ``index`` of every top. ``out``: per top, an array the row may be written
        into (a row of the batch); a top written there is returned as that very array."""
        raise NotImplementedError

    def close(self) -> None:
        """Release open files (they reopen on the next load)."""

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.update({k: None for k in getattr(self, "_handles", ())})
        return state


__all__ = ["BadItemError", "Source"]
