"""Training metrics as CSV, one row per value: ``iteration,seconds,net,metric,value``.

``net`` is ``train`` or ``test0``, ``test1``...; train rows hold ``lr``, ``iteration_loss`` (the
loss Step computed, averaged over iter_size), ``smoothed_loss`` (Caffe's displayed
average over ``average_loss``) and every net output (``accuracy``, or ``name[k]`` for
an output with several values); test rows hold each output averaged over ``test_iter``
batches (and ``loss`` with ``test_compute_loss``). Values are written with full float32
precision. A resumed run appends to the same file.
"""

from __future__ import annotations

import csv
import os
import time
from collections.abc import Iterable
from typing import Any

from caffe2torch.errors import WriteError

HEADER = ("iteration", "seconds", "net", "metric", "value")


class MetricsCSV:
    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        self.start = time.monotonic()
        new = not os.path.exists(self.path) or os.path.getsize(self.path) == 0
        try:
            folder = os.path.dirname(os.path.abspath(self.path))
            os.makedirs(folder, exist_ok=True)
            self._file: Any = open(self.path, "a", newline="")  # noqa: SIM115 (kept open)
        except OSError as e:
            raise WriteError(f"cannot write the metrics CSV: {e.strerror or e}",
                             path=self.path) from None
        self._writer = csv.writer(self._file)
        if new:
            self._writer.writerow(HEADER)
            self._file.flush()  # readers following the file (plot, tests) see the columns

    def write(self, iteration: int, net: str, values: Iterable[tuple[str, float]]) -> None:
        seconds = f"{time.monotonic() - self.start:.3f}"
        for metric, value in values:
            self._writer.writerow((iteration, seconds, net, metric, repr(float(value))))
        self._file.flush()

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()


def read_metrics(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The rows of a metrics CSV (iteration as int, value as float)."""
    out = []
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            out.append({"iteration": int(row["iteration"]), "seconds": float(row["seconds"]),
                        "net": row["net"], "metric": row["metric"],
                        "value": float(row["value"])})
    return out


__all__ = ["HEADER", "MetricsCSV", "read_metrics"]
