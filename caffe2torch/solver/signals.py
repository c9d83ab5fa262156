"""Caffe's SignalHandler (src/caffe/util/signal_handler.cpp): SIGINT and SIGHUP (and, here,
SIGTERM) become requests the solver reads between iterations, by the effect the user chose
(``caffe train -sigint_effect stop|snapshot|none -sighup_effect ...``).

``stop`` ends training after the current iteration (Solve then writes its final snapshot,
as Caffe does with ``snapshot_after_train``); ``snapshot`` writes one and goes on; ``none``
ignores the signal. A second SIGINT while a stop is pending raises KeyboardInterrupt.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType
from typing import Any

from caffe2torch.errors import SolverError

EFFECTS = ("stop", "snapshot", "none")


def check_effect(name: str, value: str) -> str:
    if value not in EFFECTS:
        raise SolverError(f"invalid {name} {value!r}", hint="use stop, snapshot or none")
    return value


class SignalHandler:
    """A context manager installing the handlers; calling it returns the pending request
    (``"stop"``, ``"snapshot"`` or None) and clears it (Caffe's GetRequestedAction)."""

    def __init__(self, sigint_effect: str = "stop", sighup_effect: str = "snapshot",
                 sigterm_effect: str = "stop") -> None:
        self.effects: dict[int, str] = {
            signal.SIGINT: check_effect("sigint_effect", sigint_effect),
            signal.SIGTERM: check_effect("sigterm_effect", sigterm_effect),
        }
        if hasattr(signal, "SIGHUP"):
            self.effects[signal.SIGHUP] = check_effect("sighup_effect", sighup_effect)
        self._pending: list[str] = []
        self._old: dict[int, Any] = {}

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        effect = self.effects.get(signum, "none")
        if effect == "none":
            return
        if signum == signal.SIGINT and "stop" in self._pending:
            raise KeyboardInterrupt  # asked twice: the user wants out now
        self._pending.append(effect)

    def __call__(self) -> str | None:
        if not self._pending:
            return None
        # a stop wins over snapshots asked in the same interval (Stop still snapshots)
        action = "stop" if "stop" in self._pending else "snapshot"
        self._pending.clear()
        return action

    def __enter__(self) -> SignalHandler:
        if threading.current_thread() is threading.main_thread():
            for signum in self.effects:
                self._old[signum] = signal.signal(signum, self._on_signal)
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, old in self._old.items():
            signal.signal(signum, old)
        self._old.clear()


__all__ = ["EFFECTS", "SignalHandler", "check_effect"]
