"""Lint time: the largest corpus prototxt, and every prototxt of the corpus."""

from __future__ import annotations

import glob
import os
import time

import caffe2torch as c2t
from bench.common import Report, min_median_time, shared

GOAL = 1.0


def run(report: Report, quick: bool) -> None:
    files = sorted(glob.glob(shared("corpus", "**", "*.prototxt"), recursive=True))
    if not files:
        report.notes.append("lint: no corpus found")
        return
    largest = max(files, key=os.path.getsize)
    t, med = min_median_time(lambda: c2t.lint(largest), 3 if quick else 5)
    report.add("lint time", f"largest ({os.path.relpath(largest, shared('corpus'))}, "
               f"{os.path.getsize(largest) // 1000} kB)", f"best {t:.3f} s, median {med:.3f} s",
               f"< {GOAL} s", t < GOAL)
    times = []
    t0 = time.perf_counter()
    for f in files:
        t1 = time.perf_counter()
        c2t.lint(f)
        times.append((time.perf_counter() - t1, f))
    total = time.perf_counter() - t0
    worst, wf = max(times)
    report.add("lint time", f"whole corpus ({len(files)} files)",
               f"{total:.2f} s, worst {worst:.3f} s", f"< {GOAL} s/file", worst < GOAL,
               f"worst: {os.path.relpath(wf, shared('corpus'))}")
