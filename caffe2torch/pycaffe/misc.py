"""The rest of pycaffe's top level: layer_type_list, Timer, logging, version."""

from __future__ import annotations

import logging
import time

from caffe2torch import __version__ as _c2t_version

__version__ = f"1.0.0+caffe2torch{_c2t_version}"

_log = logging.getLogger("caffe")


def layer_type_list() -> list[str]:
    """Every layer type a net may use (Caffe's LayerRegistry::LayerTypeList), sorted."""
    from caffe2torch.layers.registry import registered_types

    return registered_types()


def init_log(level: int = 0, stderr: bool = True) -> None:
    """Caffe's glog setup: ``level`` 0 INFO, 1 WARNING, 2 ERROR, 3 FATAL."""
    _log.setLevel({0: logging.INFO, 1: logging.WARNING, 2: logging.ERROR}.get(
        int(level), logging.CRITICAL))
    if stderr and not _log.handlers:
        _log.addHandler(logging.StreamHandler())


def set_logging_disabled() -> None:
    """lmb-freiburg's Caffe (FlowNet 2.0, DispNet): Caffe::set_logging(false), glog's
    minloglevel 2, so only errors are written."""
    _log.setLevel(logging.ERROR)


def log(message: str) -> None:
    """Write ``message`` to Caffe's INFO log."""
    _log.info(message)


class Timer:
    """caffe::Timer: ``start()``, ``stop()``, ``ms`` (elapsed milliseconds of the last
    start..stop, or so far while running), ``seconds``."""

    def __init__(self) -> None:
        self._start: float | None = None
        self._elapsed = 0.0
        self.running = False

    def start(self) -> None:
        self._start = time.perf_counter()
        self.running = True

    def stop(self) -> None:
        if self.running and self._start is not None:
            self._elapsed = time.perf_counter() - self._start
        self.running = False

    @property
    def ms(self) -> float:
        if self.running and self._start is not None:
            return (time.perf_counter() - self._start) * 1e3
        return self._elapsed * 1e3

    @property
    def seconds(self) -> float:
        return self.ms / 1e3
