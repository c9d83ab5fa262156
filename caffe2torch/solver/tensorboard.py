"""Training metrics as TensorBoard scalars (``caffe2torch train --tensorboard DIR``).

A metrics sink like MetricsCSV (``write(iteration, net, rows)``): the same values at the
same iterations, tagged ``<net>/<metric>`` (``train/lr``, ``train/smoothed_loss``,
``train/iteration_loss``, ``train/<output>``, ``test0/<output>``, ``test0/loss``). It needs
the ``tensorboard`` package (the ``tensorboard`` extra); torch writes the event files.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

from caffe2torch.errors import SolverError, WriteError

EXTRA_HINT = "pip install 'caffe2torch[tensorboard]' (or pip install tensorboard)"


def summary_writer_class() -> Any:
    try:
        import tensorboard  # noqa: F401  (torch.utils.tensorboard needs it)
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise SolverError("--tensorboard needs the tensorboard package, which is not "
                          "installed", hint=EXTRA_HINT) from None
    return SummaryWriter


class TensorBoardScalars:
    """Scalars in an event file under ``logdir`` (created when missing)."""

    def __init__(self, logdir: str | os.PathLike[str]) -> None:
        writer_class = summary_writer_class()
        self.logdir = os.fspath(logdir)
        try:
            self._writer = writer_class(log_dir=self.logdir)
        except OSError as e:
            raise WriteError(f"cannot write TensorBoard events: {e.strerror or e}",
                             path=self.logdir) from None

    def write(self, iteration: int, net: str, values: Iterable[tuple[str, float]]) -> None:
        for metric, value in values:
            self._writer.add_scalar(f"{net}/{metric}", float(value), int(iteration))
        self._writer.flush()

    def close(self) -> None:
        self._writer.close()


__all__ = ["EXTRA_HINT", "TensorBoardScalars", "summary_writer_class"]
