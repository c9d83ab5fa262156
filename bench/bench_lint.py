"""Lint time: the largest corpus prototxt, and every prototxt of the corpus; and the start-up
of `caffe2torch lint` in a fresh process (what a user or an editor hook waits for)."""

from __future__ import annotations

import glob
import os
import sys
import time

import caffe2torch as c2t
from bench.common import Report, fresh_process_times, min_median_time, shared

GOAL = 1.0
STARTUP_GOAL = 0.3  # seconds, `caffe2torch lint` of ResNet-50's deploy net, start to finish
RESNET50 = ("KaimingHe__deep-residual-networks", "prototxt", "ResNet-50-deploy.prototxt")
LENET = ("BVLC__caffe", "examples", "mnist", "lenet.prototxt")


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
    startup(report, quick)


def startup(report: Report, quick: bool) -> None:
    """`python -m caffe2torch lint FILE` in a new interpreter each time, best of N: the
    imports and the work of one run. `python -c pass` is the interpreter's own share. The
    goal is judged on CPU time, which equals the wall time on an idle machine and, unlike
    it, does not grow with other jobs waiting for the same cores."""
    repeat = 5 if quick else 10
    root = os.path.dirname(os.path.dirname(os.path.abspath(c2t.__file__)))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [root, *filter(None, [os.environ.get("PYTHONPATH")])])}
    bytecode = ("no bytecode cache (PYTHONDONTWRITEBYTECODE): every module compiled"
                if sys.dont_write_bytecode else "bytecode cached")
    cases = [("python -c pass (reference)", ["-c", "pass"], None),
             ("caffe2torch --help", ["-m", "caffe2torch", "--help"], None)]
    resnet, lenet = shared("corpus", *RESNET50), shared("corpus", *LENET)
    if os.path.exists(resnet):
        cases.append(("lint ResNet-50 deploy", ["-m", "caffe2torch", "lint", resnet],
                      STARTUP_GOAL))
    else:
        report.notes.append("lint startup: no ResNet-50 deploy prototxt in the corpus")
    if os.path.exists(lenet):
        cases.append(("lint LeNet", ["-m", "caffe2torch", "lint", lenet], None))
    for name, args, goal in cases:
        wall, cpu = fresh_process_times([sys.executable, *args], repeat, env)
        report.add("lint startup, fresh process", name,
                   f"wall {wall:.3f} s, CPU {cpu:.3f} s (best of {repeat})",
                   f"< {goal} s CPU" if goal else "", None if goal is None else cpu < goal,
                   bytecode if goal else "")
