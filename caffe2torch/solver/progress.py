"""A progress bar over the training iterations, on stderr beside Caffe's log lines.

The log lines stay whole and parseable: they go through :meth:`ProgressBar.stream`, which
clears the bar, writes the line and draws the bar again below it, so a log parser (or
``grep 'Iteration'``) reading the terminal's scroll-back or a copy of it sees each line
unbroken. tqdm draws the bar when it is installed (the ``progress`` extra); otherwise a
one-line fallback does. The bar is on when stderr is a terminal, off in CI (``CI`` set),
with ``--no-progress`` or when the stream is not a terminal (a log file stays clean).
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any, TextIO

_CLEAR = "\r\x1b[K"


def progress_wanted(enabled: bool | None, stream: TextIO | None = None) -> bool:
    """``enabled`` False: off; True: on; None: on when ``stream`` (stderr) is a terminal
    and this is not a CI run."""
    if enabled is not None:
        return enabled
    stream = stream if stream is not None else sys.stderr
    if os.environ.get("CI"):
        return False
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


class ProgressBar:
    """``update(iteration, loss)`` after each iteration; ``stream`` for the log lines."""

    def __init__(self, total: int, *, initial: int = 0, out: TextIO | None = None,
                 use_tqdm: bool = True) -> None:
        self.out = out if out is not None else sys.stderr
        self.total = int(total)
        self.iteration = int(initial)
        self.loss: float | None = None
        self._start = time.monotonic()
        self._start_iter = self.iteration
        self._tqdm: Any = None
        if use_tqdm:
            try:
                from tqdm import tqdm
            except ImportError:
                pass
            else:
                self._tqdm = tqdm(total=self.total, initial=self.iteration, file=self.out,
                                  unit="iter", dynamic_ncols=True, leave=False)
        self.stream = _PassAbove(self)

    def update(self, iteration: int, loss: float | None = None) -> None:
        step = int(iteration) - self.iteration
        self.iteration = int(iteration)
        if loss is not None:
            self.loss = float(loss)
        if self._tqdm is not None:
            if self.loss is not None:
                self._tqdm.set_postfix(loss=f"{self.loss:.4g}", refresh=False)
            self._tqdm.update(step)
        else:
            self._draw()

    def text(self) -> str:
        """The fallback bar: ``[#####.....]  120/1000  12%  3.4 iter/s  loss 0.231``."""
        width = 24
        frac = min(1.0, self.iteration / self.total) if self.total > 0 else 1.0
        filled = round(frac * width)
        lapse = time.monotonic() - self._start
        rate = (self.iteration - self._start_iter) / lapse if lapse > 0 else 0.0
        loss = f"  loss {self.loss:.4g}" if self.loss is not None else ""
        return (f"[{'#' * filled}{'.' * (width - filled)}] {self.iteration}/{self.total} "
                f"{frac * 100:3.0f}%  {rate:.3g} iter/s{loss}")

    def _draw(self) -> None:
        self._emit(_CLEAR + self.text())

    def _emit(self, text: str) -> None:
        try:
            self.out.write(text)
            self.out.flush()
        except (OSError, ValueError):
            pass

    def write_above(self, text: str) -> None:
        """Write ``text`` (whole lines) with the bar moved below it."""
        if self._tqdm is not None:
            self._tqdm.write(text, file=self.out, end="")
            return
        self._emit(_CLEAR + text)
        self._draw()

    def close(self) -> None:
        rest, self.stream._pending = self.stream._pending, ""
        if rest:
            self.write_above(rest + "\n")
        if self._tqdm is not None:
            self._tqdm.close()
            self._tqdm = None
        else:
            self._emit(_CLEAR)


class _PassAbove:
    """A text stream for GlogWriter: complete lines go above the bar."""

    def __init__(self, bar: ProgressBar) -> None:
        self.bar = bar
        self._pending = ""

    def write(self, text: str) -> int:
        self._pending += text
        if "\n" in self._pending:
            head, _, self._pending = self._pending.rpartition("\n")
            self.bar.write_above(head + "\n")
        return len(text)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return bool(getattr(self.bar.out, "isatty", lambda: False)())


__all__ = ["ProgressBar", "progress_wanted"]
