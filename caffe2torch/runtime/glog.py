"""Log lines in glog's layout, as Caffe's tools print them, so that Caffe's log parsers
(tools/extra/parse_log.py, plot_training_log.py) read our training logs unchanged:

    I0210 13:39:22.381027 25210 solver.cpp:228] Iteration 100, loss = 0.0992565

Numbers are printed as a C++ ostream prints a float by default (``%g``, 6 significant
digits).
"""

from __future__ import annotations

import datetime
import os
import sys
from typing import TextIO


def fmt(value: float) -> str:
    """``std::ostream << float`` with the default precision (6 significant digits)."""
    return f"{float(value):.6g}"


class GlogWriter:
    """Writes ``I<mmdd> <time> <pid> <where>] <message>`` lines to a stream (None: silent)."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream

    def info(self, message: str, where: str = "solver.cpp:0") -> None:
        self._write("I", message, where)

    def warning(self, message: str, where: str = "solver.cpp:0") -> None:
        self._write("W", message, where)

    def _write(self, severity: str, message: str, where: str) -> None:
        if self.stream is None:
            return
        now = datetime.datetime.now()
        prefix = f"{severity}{now:%m%d %H:%M:%S.%f} {os.getpid():>5} {where}] "
        try:
            self.stream.write(prefix + message + "\n")
            self.stream.flush()
        except (OSError, ValueError):  # a closed or broken stream must not stop training
            self.stream = None


def default_stream() -> TextIO:
    return sys.stderr


__all__ = ["GlogWriter", "default_stream", "fmt"]
