"""OpenMP's idle threads sleep instead of spinning when the machine is oversubscribed.

torch's OpenMP runtime (libgomp) keeps each idle worker spinning for a while after every
parallel region. On a machine whose run queue already holds more runnable threads than
it has cores, those spins take the CPU from the thread that has work: with the 1-minute
load at 6x the cores, a LeNet forward+backward took 1.0-1.6 s with the default policy
and 0.04-0.12 s with ``OMP_WAIT_POLICY=PASSIVE`` (same build, runs interleaved), while
Caffe (OpenBLAS threads, which yield) slowed by ~3x. On an idle machine spinning saves
a few microseconds per region, so it is kept there.

libgomp reads the variable once, when it is loaded with torch: :func:`choose` runs when
this module is imported, first thing in the package, and acts only when the user has not
set the policy (``CAFFE2TORCH_OMP_WAIT=off`` keeps libgomp's default) and torch is not
loaded yet.

Training is a case of its own (:func:`bound_spin`, called by ``caffe2torch train``): a
thread reads the next batch while the net runs (Caffe's prefetch thread), so the process
alone has more runnable threads than cores at times, and a run of minutes outlives the
load it started under. libgomp's default spin (GOMP_SPINCOUNT 300000, milliseconds after
every region) then took the cores from both: the MNIST Siamese solver from ImageData
lists ran at 1.2-3.2 it/s against 8-14 it/s with PASSIVE (load 4-6 on 2 cores; 3.6-5.8
it/s with GOMP_SPINCOUNT=20000, 8-11 with 1000). ``GOMP_SPINCOUNT=1000`` (some tens of
microseconds) keeps the short spin between back-to-back regions and lets go soon after.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Container, MutableMapping


def passive_wanted(load: float, cores: int) -> bool:
    """Whether idle OpenMP threads should sleep: the 1-minute load exceeds the cores."""
    return cores > 0 and load > cores


def choose(environ: MutableMapping[str, str] = os.environ,
           modules: Container[str] = sys.modules) -> str | None:
    """Set ``OMP_WAIT_POLICY=PASSIVE`` in ``environ`` when the machine is oversubscribed
    and nothing decided it yet; returns the policy set, or None."""
    if "OMP_WAIT_POLICY" in environ or "GOMP_SPINCOUNT" in environ or "torch" in modules:
        return None
    if environ.get("CAFFE2TORCH_OMP_WAIT", "auto") != "auto":  # "off": leave libgomp's
        return None
    try:
        load = os.getloadavg()[0]
    except OSError:  # no load average on this platform
        return None
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (
        os.cpu_count() or 0)
    if not passive_wanted(load, cores):
        return None
    environ["OMP_WAIT_POLICY"] = "PASSIVE"
    return "PASSIVE"


# spins of an idle OpenMP worker during training (libgomp's default: 300000)
TRAINING_SPIN_COUNT = 1000


def bound_spin(environ: MutableMapping[str, str] = os.environ,
               modules: Container[str] = sys.modules) -> str | None:
    """Set ``GOMP_SPINCOUNT=TRAINING_SPIN_COUNT`` when nothing decided how idle OpenMP
    threads wait (not the user, not :func:`choose`) and torch is not loaded; returns the
    count set, or None."""
    if "OMP_WAIT_POLICY" in environ or "GOMP_SPINCOUNT" in environ or "torch" in modules:
        return None
    if environ.get("CAFFE2TORCH_OMP_WAIT", "auto") != "auto":
        return None
    environ["GOMP_SPINCOUNT"] = str(TRAINING_SPIN_COUNT)
    return environ["GOMP_SPINCOUNT"]


choose()
