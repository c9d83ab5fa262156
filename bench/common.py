"""Shared helpers: interleaved A/B timing, medians, machine description, result rows."""

from __future__ import annotations

import gc
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

SHARED = os.environ.get("CAFFE2TORCH_SHARED") or os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "..", "shared"
)
SHARED = os.path.normpath(SHARED)


def shared(*parts: str) -> str:
    return os.path.join(SHARED, *parts)


@dataclass
class Row:
    """One line of the results table."""

    benchmark: str
    case: str
    measured: str
    goal: str
    ok: bool | None  # None: informational, no goal
    note: str = ""


@dataclass
class Report:
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, *args: object, **kw: object) -> None:
        row = Row(*args, **kw)  # type: ignore[arg-type]
        self.rows.append(row)
        status = "" if row.ok is None else ("ok" if row.ok else "MISS")
        print(f"  {row.case:42s} {row.measured:34s} {row.goal:14s} {status} {row.note}",
              flush=True)


def time_once(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _samples(a: Callable[[], object], b: Callable[[], object], repeat: int, warmup: int,
             budget_s: float) -> tuple[list[float], list[float]]:
    """Seconds of each run of ``a`` and ``b``, timed alternately (A B B A A B ...)."""
    pair = 0.0
    for _ in range(warmup):
        pair = time_once(a) + time_once(b)
    if budget_s and pair > 0:
        repeat = max(repeat, min(400, int(budget_s / pair)))
    ta, tb = [], []
    gc.collect()
    gc_was = gc.isenabled()
    gc.disable()
    try:
        for i in range(repeat):
            if i % 2 == 0:
                ta.append(time_once(a))
                tb.append(time_once(b))
            else:
                tb.append(time_once(b))
                ta.append(time_once(a))
    finally:
        if gc_was:
            gc.enable()
    return ta, tb


def interleaved(a: Callable[[], object], b: Callable[[], object], repeat: int,
                warmup: int = 1, budget_s: float = 0.0) -> tuple[float, float]:
    """Median seconds of ``a`` and of ``b``, timed alternately (A B B A A B ...) so that
    load from other processes on the machine hits both alike. ``budget_s``: repeat more
    than ``repeat`` times while the pairs fit in that many seconds (up to 400): fast cases
    get enough samples for their median to settle."""
    ta, tb = _samples(a, b, repeat, warmup, budget_s)
    return statistics.median(ta), statistics.median(tb)


def paired_ratio(a: Callable[[], object], b: Callable[[], object], repeat: int,
                 warmup: int = 1, budget_s: float = 0.0) -> tuple[float, float, float]:
    """(median of a, median of b, median over adjacent pairs of time(b) / time(a)): each A
    is set against the B timed next to it, which cancels the machine's slow drifts (other
    jobs, clock changes) that a ratio of two medians still carries."""
    ta, tb = _samples(a, b, repeat, warmup, budget_s)
    ratio = statistics.median(y / x for x, y in zip(ta, tb))
    return statistics.median(ta), statistics.median(tb), ratio


def median_time(fn: Callable[[], object], repeat: int, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    return statistics.median(time_once(fn) for _ in range(repeat))


def min_median_time(fn: Callable[[], object], repeat: int, warmup: int = 1
                    ) -> tuple[float, float]:
    """(best, median) seconds: on a machine shared with other work the best run is the
    cost of the work itself; the median shows what the load added."""
    for _ in range(warmup):
        fn()
    times = [time_once(fn) for _ in range(repeat)]
    return min(times), statistics.median(times)


def fresh_process_times(argv: list[str], repeat: int, env: dict[str, str] | None = None,
                        ) -> tuple[float, float]:
    """(best wall, best CPU) seconds of ``argv`` run as a new process ``repeat`` times (one
    warm-up run first): CPU is user + system time of the child (resource.RUSAGE_CHILDREN),
    which another job on the machine does not add to, as it does to the wall time. Output
    is discarded; the command runs in an empty temporary folder."""
    import resource
    import subprocess
    import tempfile

    walls, cpus = [], []
    with tempfile.TemporaryDirectory() as cwd:
        for i in range(repeat + 1):
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            t0 = time.perf_counter()
            subprocess.run(argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, check=False)
            wall = time.perf_counter() - t0
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            if i:
                walls.append(wall)
                cpus.append(after.ru_utime - before.ru_utime
                            + after.ru_stime - before.ru_stime)
    return min(walls), min(cpus)


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict[str, str]:
    import numpy
    import torch

    try:
        import cv2

        cv = cv2.__version__
    except ImportError:
        cv = "absent"
    return {
        "cpu": cpu_model(),
        "cores": str(os.cpu_count()),
        "torch threads": str(torch.get_num_threads()),
        "os": platform.platform(),
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "opencv": cv,
    }
