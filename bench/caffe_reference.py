"""Train a net with a BVLC Caffe binary, for benchmarks that compare against the reference.

Nothing here is needed to use caffe2torch: the metric-learning benchmark calls it only when
given ``--caffe PATH`` (a ``caffe`` executable, e.g. Debian 11's ``caffe`` package, built
from BVLC master of 2018-08-21). The solver is written out as Caffe reads it, Caffe trains
in the work folder (the paths in the net and the lists are relative to it, as for our runs)
and the learned weights come back as a ``.caffemodel``, which caffe2torch then scores.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# "Iteration N (R iter/s, ...), loss = X" at each display, "Iteration N, loss = X" at the end
_LOSS = re.compile(r"Iteration (\d+)(?: \([^)]*\))?, loss = ([-+0-9.eE]+|nan|inf)")
# glog's line head: I1202 02:51:01.688294
_STAMP = re.compile(r"^[IWEF]\d{4} (\d\d):(\d\d):(\d\d\.\d+) ")


@dataclass(frozen=True)
class CaffeRun:
    weights: Path  # the caffemodel Caffe wrote at the last iteration
    iterations: int
    seconds: float  # training steps alone (from the log's time stamps), as for our runs
    final_loss: float
    log: Path


def find_caffe(spec: str) -> str:
    """The executable ``spec`` names (a path, or a name on PATH); raises when there is none."""
    found = shutil.which(spec)
    if found is None:
        raise FileNotFoundError(f"no Caffe executable {spec!r}: give the path of `caffe` "
                                "(tools/caffe of a BVLC build)")
    return found


def describe(caffe: str) -> str:
    """What the executable says of itself, and the Debian package that holds it, if any."""
    said = subprocess.run([caffe, "--version"], capture_output=True, text=True, check=False)
    text = (said.stdout or said.stderr).strip().splitlines()
    parts = [text[0] if text else "caffe"]
    owner = subprocess.run(["dpkg", "-S", os.path.realpath(caffe)], capture_output=True,
                           text=True, check=False) if shutil.which("dpkg") else None
    if owner is not None and owner.returncode == 0:
        package = owner.stdout.split(":")[0]
        version = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", package],
                                 capture_output=True, text=True, check=False).stdout
        parts.append(f"Debian package {package} {version}")
    return ", ".join(parts)


def write_solver(param: Any, path: Path) -> None:
    """A SolverParameter as the prototxt text Caffe reads."""
    from google.protobuf import text_format

    path.write_text(text_format.MessageToString(param))


def final_loss(log_text: str) -> float:
    """The last (smoothed) loss Caffe prints."""
    found = _LOSS.findall(log_text)
    return float(found[-1][1]) if found else float("nan")


def _stamp(line: str) -> float | None:
    m = _STAMP.match(line)
    return None if m is None else int(m[1]) * 3600 + int(m[2]) * 60 + float(m[3])


def training_seconds(log_text: str) -> float:
    """Seconds from the first iteration's display line to the last snapshot, which Caffe
    writes straight after the last step: the steps alone, without loading the net or
    reading the weights."""
    first = last = None
    for line in log_text.splitlines():
        if first is None and "Iteration 0 (" in line:
            first = _stamp(line)
        if "Snapshotting to " in line:
            last = _stamp(line)
    if first is None or last is None:
        return float("nan")
    return (last - first) % 86_400  # the stamps carry no date


def caffe_train(caffe: str, work: Path, param: Any, solver_name: str, weights: str | None,
                log_path: Path, threads: int | None = None) -> CaffeRun:
    """Run ``caffe train`` in ``work`` on ``param`` (written to ``work/solver_name``),
    starting from ``weights`` (relative to ``work``) when given. Caffe snapshots only at
    ``snapshot`` multiples: the caller sets ``snapshot`` to ``max_iter``."""
    solver_path = work / solver_name
    write_solver(param, solver_path)
    command = [caffe, "train", "-solver", solver_name]
    if weights:
        command += ["-weights", weights]
    env = dict(os.environ, GLOG_logtostderr="1")
    if threads:  # Caffe's BLAS threads, as torch's for our runs
        env.update(OPENBLAS_NUM_THREADS=str(threads), OMP_NUM_THREADS=str(threads),
                   MKL_NUM_THREADS=str(threads))
    with open(log_path, "w") as log:
        done = subprocess.run(command, cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT,
                              check=False)
    text = log_path.read_text(errors="replace")
    iterations = int(param.max_iter)
    prefix = param.snapshot_prefix
    model = work / f"{prefix}_iter_{iterations}.caffemodel"
    if done.returncode != 0 or not model.is_file():
        tail = "\n".join(text.splitlines()[-15:])
        raise RuntimeError(f"`{' '.join(command)}` in {work} failed (exit {done.returncode}); "
                           f"the end of {log_path}:\n{tail}")
    return CaffeRun(model, iterations, training_seconds(text), final_loss(text), log_path)
