"""Peak memory of training steps against BVLC Caffe: ``caffe train`` and ``caffe2torch
train`` on the same solver and net, for the nets of bench_caffe's cases.

    python -m bench --only caffe --caffe /usr/bin/caffe          (after the fwd+bwd cases)
    python -m bench --only caffe-memory --caffe /usr/bin/caffe   (this part alone)

Each case's net is trained as written (its loss layers kept; a deploy net's final Softmax
becomes a SoftmaxWithLoss on a label), fed by one DummyData layer of the case's shapes
(constant values, so neither tool reads files), for a few SGD iterations with momentum
and weight decay: both tools hold the weights, their diffs and the momentum history, as in
any training. No test net, no snapshot. The peak of each process's anonymous memory
(RssAnon, bench_caffe's launcher) is taken over the same tool training a one-layer net, so
that what each runtime holds before a net's blobs (Python and torch's libraries; Caffe's
much smaller binary) is left out. Median over the runs of each tool, run alternately.
"""

from __future__ import annotations

import os
import re
import statistics
import sys
import tempfile
from pathlib import Path

from bench.bench_caffe import DATA_TYPES, ROOT, CaffeCase, _run_measured, cases
from bench.common import Report

ITERATIONS = 6
_BASELINE_NET = """\
layer { name: "data" type: "DummyData" top: "x" top: "y"
        dummy_data_param { shape { dim: 1 dim: 4 } shape { dim: 1 dim: 1 } } }
layer { name: "ip" type: "InnerProduct" bottom: "x" top: "z"
        inner_product_param { num_output: 1 } }
layer { name: "loss" type: "EuclideanLoss" bottom: "z" bottom: "y" top: "loss" }
"""


def write_training_net(case: CaffeCase, path: Path) -> None:
    """The case's net fed by DummyData of its input shapes, with a loss to train on."""
    from google.protobuf import text_format

    from caffe2torch.io import read_net
    from caffe2torch.proto import caffe_pb2

    net = read_net(case.prototxt)
    has_loss = any(layer.type.endswith("Loss") for layer in net.layer)
    inputs = dict(case.inputs)
    if not has_loss:
        inputs["label"] = inputs["data"][:1]
    out = caffe_pb2.NetParameter(name=net.name)
    data = out.layer.add(name="dummy", type="DummyData")
    for top, shape in inputs.items():
        data.top.append(top)
        data.dummy_data_param.shape.add().dim.extend(shape)
        data.dummy_data_param.data_filler.add(
            type="constant", value=0.0 if top.startswith("label") else 0.1)
    last = net.layer[-1]
    for layer in net.layer:
        if layer.type in DATA_TYPES:
            continue
        if not has_loss and layer is last and layer.type == "Softmax":
            out.layer.add(name="loss", type="SoftmaxWithLoss",
                          bottom=[layer.bottom[0], "label"], top=["loss"])
        else:
            out.layer.add().CopyFrom(layer)
    path.write_text(text_format.MessageToString(out))


def write_solver(net: Path, path: Path, iterations: int) -> None:
    path.write_text(f'net: "{net}"\nbase_lr: 0.0001\nmomentum: 0.9\nweight_decay: 0.0005\n'
                    f'lr_policy: "fixed"\nmax_iter: {iterations}\ndisplay: 0\n'
                    'snapshot_after_train: false\nsolver_mode: CPU\n')


def _env() -> dict[str, str]:
    import torch

    threads = str(torch.get_num_threads())
    env = dict(os.environ, GLOG_logtostderr="1", OMP_NUM_THREADS=threads,
               OPENBLAS_NUM_THREADS=threads, MKL_NUM_THREADS=threads)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(
        os.pathsep)
    return env


def _peak_anon(command: list[str], env: dict[str, str]) -> float:
    text, code, _, anon = _run_measured(command, env)
    if code != 0:
        tail = "\n".join(text.splitlines()[-8:])
        raise RuntimeError(f"`{' '.join(command)}` failed (exit {code}):\n{tail}")
    return anon


def run(report: Report, quick: bool) -> None:
    from bench import bench_caffe

    caffe = bench_caffe.CAFFE_EXE
    if caffe is None:
        report.notes.append("caffe-memory: skipped (give the Caffe executable: --caffe PATH)")
        print("  skipped: no --caffe PATH")
        return
    run_cases(report, caffe, quick)


def run_cases(report: Report, caffe: str, quick: bool) -> None:
    env = _env()
    runs = 1 if quick else 3
    with tempfile.TemporaryDirectory(prefix="c2t-caffe-memory-") as tmp:
        work = Path(tmp)

        def tools(solver: Path) -> dict[str, list[str]]:
            return {"caffe": [caffe, "train", "-solver", str(solver)],
                    "ours": [sys.executable, "-m", "caffe2torch", "train", "-solver",
                             str(solver), "--quiet"]}

        (work / "baseline.prototxt").write_text(_BASELINE_NET)
        write_solver(work / "baseline.prototxt", work / "baseline_solver.prototxt", 3)
        base = {name: _peak_anon(cmd, env)
                for name, cmd in tools(work / "baseline_solver.prototxt").items()}
        for case in cases():
            stem = re.sub(r"\W+", "_", case.name)
            write_training_net(case, work / f"{stem}.prototxt")
            write_solver(work / f"{stem}.prototxt", work / f"{stem}_solver.prototxt",
                         ITERATIONS)
            commands = tools(work / f"{stem}_solver.prototxt")
            peaks: dict[str, list[float]] = {"caffe": [], "ours": []}
            for k in range(runs):
                for name in (("caffe", "ours") if k % 2 == 0 else ("ours", "caffe")):
                    peaks[name].append(_peak_anon(commands[name], env) - base[name])
            ours, theirs = statistics.median(peaks["ours"]), statistics.median(peaks["caffe"])
            report.add("caffe", f"{case.name} training peak data memory vs caffe train",
                       f"{ours:.0f} vs {theirs:.0f} MB = {ours / theirs:.2f}x", "<= 1.0x",
                       ours <= theirs,
                       f"{ITERATIONS} SGD iterations on DummyData; peak anonymous RSS over "
                       f"each tool training a one-layer net ({base['ours']:.0f} / "
                       f"{base['caffe']:.0f} MB); runs ours "
                       f"{', '.join(f'{p:.0f}' for p in peaks['ours'])}, Caffe "
                       f"{', '.join(f'{p:.0f}' for p in peaks['caffe'])}")
