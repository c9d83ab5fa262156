"""caffe2torch against BVLC Caffe on a whole training run: ``caffe train`` and
``caffe2torch train`` on the same solver, net and list files, iterations per second.

    python -m bench --only caffe --caffe /usr/bin/caffe [--quick]   (run after the fwd+bwd cases)
    python -m bench --only caffe-train --caffe /usr/bin/caffe        (this case alone)

The case is the built-in demo (``caffe2torch demo``): Caffe's MNIST Siamese net fed by two
aligned ImageData lists (train1.txt / train2.txt, 40,000 pairs of 28x28 grey PNGs, batch 64
per tower: 128 PNGs per iteration). Its files are written once into a temporary folder;
the solver is the demo's with nothing that would dominate or differ between the tools: no
test net (no test_iter / test_interval), no snapshots (snapshot 0,
snapshot_after_train false), the same max_iter for both.

Both tools run as subprocesses in that folder, alternately (Caffe, ours, ours, Caffe, ...).
Each run's rate comes from its log's glog time stamps between two "Iteration N (...)"
display lines well after the start (loading the net, building, the first iterations are
left out): (N2 - N1) / (t2 - t1). Ratio = ours / Caffe's iterations per second, median
over the pairs. Before timing, the bench checks that both read the same lists (Caffe's log
names them with their lengths; ours are the DataFeeder's sources for the same net) and
that our loss goes down as Caffe's does.
"""

from __future__ import annotations

import os
import re
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from bench.common import Report

ROOT = Path(__file__).resolve().parent.parent
GOAL = 1.5
SOLVER = "bench_solver.prototxt"

# glog's line head: I1202 02:51:01.688294
_STAMP = re.compile(r"^[IWEF]\d{4} (\d\d):(\d\d):(\d\d\.\d+) ")
# Solver::Step's display line: "Iteration N (R iter/s, Ts/K iters), loss = X"
_DISPLAY = re.compile(r"\] Iteration (\d+) \([^)]*\), loss = ([-+0-9.eE]+|nan|inf)")
# ImageDataLayer::DataLayerSetUp: "Opening file F" then "A total of N images."
_OPENING = re.compile(r"Opening file (\S+)")
_TOTAL = re.compile(r"A total of (\d+) images")


@dataclass(frozen=True)
class TrainRun:
    rate: float  # iterations per second inside the window
    window: tuple[int, int]  # the display iterations the rate is taken between
    losses: list[tuple[int, float]]  # (iteration, smoothed loss) of every display line
    log: str


def write_bench_solver(work: Path, max_iter: int, display: int) -> Path:
    """The demo's solver, as Caffe reads it, with no test net and no snapshot."""
    from google.protobuf import text_format

    from caffe2torch.io import read_solver

    param = read_solver(str(work / "solver.prototxt"))
    param.ClearField("test_iter")
    param.ClearField("test_interval")
    param.max_iter = max_iter
    param.display = display
    param.snapshot = 0
    param.snapshot_after_train = False
    param.snapshot_prefix = "snapshots/bench"
    (work / "snapshots").mkdir(exist_ok=True)
    path = work / SOLVER
    path.write_text(text_format.MessageToString(param))
    return path


def prepare(work: Path, max_iter: int, display: int) -> Path:
    """Images, lists, net (the demo's) and the bench solver in ``work``."""
    from caffe2torch.examples.siamese_demo import prepare as prepare_demo

    prepare_demo(work)
    return write_bench_solver(work, max_iter, display)


def _stamp(line: str) -> float | None:
    m = _STAMP.match(line)
    return None if m is None else int(m[1]) * 3600 + int(m[2]) * 60 + float(m[3])


def parse_run(text: str, skip: int) -> TrainRun:
    """Rate between the first display line at iteration >= ``skip`` and the last one."""
    points: list[tuple[int, float]] = []
    losses: list[tuple[int, float]] = []
    for line in text.splitlines():
        m = _DISPLAY.search(line)
        stamp = _stamp(line)
        if m is None or stamp is None:
            continue
        it = int(m[1])
        losses.append((it, float(m[2])))
        if it >= skip:
            points.append((it, stamp))
    if len(points) < 2:
        raise RuntimeError(f"fewer than two display lines past iteration {skip} in the log")
    (i1, t1), (i2, t2) = points[0], points[-1]
    seconds = (t2 - t1) % 86_400  # the stamps carry no date
    return TrainRun((i2 - i1) / seconds, (i1, i2), losses, text)


def caffe_lists(text: str) -> list[tuple[str, int]]:
    """(list file, rows) of each ImageData layer Caffe set up, from its log."""
    names = _OPENING.findall(text)
    totals = [int(n) for n in _TOTAL.findall(text)]
    return list(zip(names, totals))


def our_lists(work: Path, net_file: str) -> list[tuple[str, int]]:
    """(list file, rows) of each TRAIN data layer our DataFeeder reads for ``net_file``."""
    from caffe2torch.data import DataFeeder
    from caffe2torch.io import read_net

    with DataFeeder.from_net(read_net(str(work / net_file)), "TRAIN", cwd=work) as feeder:
        return [(s.source, len(s)) for s in feeder.sources]


def _run(command: list[str], work: Path, env: dict[str, str], skip: int) -> TrainRun:
    done = subprocess.run(command, cwd=work, capture_output=True, text=True, env=env,
                          check=False)
    text = done.stdout + done.stderr
    if done.returncode != 0:
        tail = "\n".join(text.splitlines()[-8:])
        raise RuntimeError(f"`{' '.join(command)}` failed (exit {done.returncode}):\n{tail}")
    return parse_run(text, skip)


def _env() -> dict[str, str]:
    import torch

    env = dict(os.environ, GLOG_logtostderr="1")
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(
        os.pathsep)
    threads = str(torch.get_num_threads())  # the same BLAS/OpenMP threads for both
    env.update(OMP_NUM_THREADS=threads, OPENBLAS_NUM_THREADS=threads, MKL_NUM_THREADS=threads)
    return env


def _check_loss(name: str, losses: list[tuple[int, float]]) -> None:
    first, last = losses[0][1], losses[-1][1]
    if not (last == last and last < first):  # nan, or no progress
        raise RuntimeError(f"{name}'s loss did not go down: {first} at iteration "
                           f"{losses[0][0]}, {last} at {losses[-1][0]}")


def run_case(report: Report, caffe: str, quick: bool) -> None:
    max_iter, display, skip = (400, 50, 100) if quick else (1000, 50, 200)
    pairs = 1 if quick else 3
    env = _env()
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="c2t-caffe-train-") as tmp:
        work = Path(tmp)
        solver = prepare(work, max_iter, display)
        caffe_cmd = [caffe, "train", "--solver", solver.name]
        ours_cmd = [sys.executable, "-m", "caffe2torch", "train", "--solver", solver.name,
                    "--no-progress"]
        ratios: list[float] = []
        rates: dict[str, list[float]] = {"caffe": [], "ours": []}
        last: dict[str, TrainRun] = {}
        for k in range(pairs):
            order = [("caffe", caffe_cmd), ("ours", ours_cmd)]
            if k % 2:
                order.reverse()
            for name, command in order:
                last[name] = _run(command, work, env, skip)
                rates[name].append(last[name].rate)
            ratios.append(rates["ours"][-1] / rates["caffe"][-1])
        theirs = sorted(caffe_lists(last["caffe"].log))
        mine = sorted(our_lists(work, "train_test.prototxt"))
        if theirs != mine:
            raise RuntimeError(f"the tools read different lists: Caffe {theirs}, ours {mine}")
        for name in ("caffe", "ours"):
            _check_loss(name, last[name].losses)
    ratio = statistics.median(ratios)
    ours, theirs_rate = statistics.median(rates["ours"]), statistics.median(rates["caffe"])
    a, b = last["ours"].window
    lists = ", ".join(f"{n} ({rows})" for n, rows in mine)
    report.add("caffe", "MNIST Siamese train from ImageData lists vs caffe train",
               f"{ratio:.2f}x ({ours:.1f} vs {theirs_rate:.1f} it/s)", f">= {GOAL}x",
               ratio >= GOAL,
               f"{pairs} pairs ({', '.join(f'{r:.2f}' for r in ratios)}), iterations "
               f"{a}-{b} of {max_iter}; lists {lists}; final "
               f"loss ours {last['ours'].losses[-1][1]:.4f} / Caffe "
               f"{last['caffe'].losses[-1][1]:.4f}; 1-min load {load:.1f} at start")


def run(report: Report, quick: bool) -> None:
    from bench import bench_caffe

    if bench_caffe.CAFFE_EXE is None:
        report.notes.append("caffe-train: skipped (give the Caffe executable: --caffe PATH)")
        print("  skipped: no --caffe PATH")
        return
    run_case(report, bench_caffe.CAFFE_EXE, quick)
