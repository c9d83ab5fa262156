"""caffe2torch against BVLC Caffe: ``caffe time`` and ``caffe2torch time`` on the same
prototxt, forward+backward, side by side.

    python -m bench --only caffe --caffe /usr/bin/caffe [--compile] [--quick]

(then the training case of bench/bench_caffe_train.py: `caffe train` against ours, and
the training steps' peak memory of bench/bench_caffe_memory.py)

Each case's net is written once as Caffe reads it: its data layers replaced by one Input
layer of the case's shapes and ``force_backward: true`` (without it Caffe skips the
backward of a net without a loss, and ``caffe time`` would time forward only). Both tools
run as subprocesses on that file, alternately (Caffe, ours, ours, Caffe, ...), and each
run's "Average Forward-Backward" is read from its log; the ratio of each pair is Caffe's
time / ours (> 1: caffe2torch is faster), reported as the median over the pairs. The
per-layer lines of the last pair name the layers where we lose most.

FLOPs of one forward+backward come from torch's FlopCounterMode on the same net; the
sgemm rate is torch.mm's on 2048 x 2048 float32 matrices, on the same threads and in a
process started as ours are, so that
"% of sgemm" is the share of the machine's GEMM rate each tool reaches on that net.
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

import torch

from bench.common import Report, shared

CAFFE_EXE: str | None = None  # set by ``python -m bench --caffe PATH``
COMPILE = False  # set by ``--compile``: caffe2torch time --compile
ROOT = Path(__file__).resolve().parent.parent
DATA_TYPES = frozenset({"Data", "ImageData", "HDF5Data", "MemoryData", "WindowData",
                        "DummyData", "Input", "Python", "AnnotatedData", "VideoData"})
GOALS = {"each": 1.3, "geomean": 1.6, "sgemm": 0.85}

_TOTAL = re.compile(r"Average Forward-Backward: ([0-9.eE+-]+) ms")
_LAYER = re.compile(r"\]\s+(\S+)\s+(forward|backward): ([0-9.eE+-]+) ms")


@dataclass(frozen=True)
class CaffeCase:
    name: str
    prototxt: str
    inputs: dict[str, tuple[int, ...]]
    iterations: int
    gemm_bound: bool = False


def cases() -> list[CaffeCase]:
    corpus = "corpus/BVLC__caffe"
    pair = {"data": (4, 3, 227, 227), "data_p": (4, 3, 227, 227), "label": (4,),
            "label_p": (4,)}
    return [
        CaffeCase("LeNet b64", shared(corpus, "examples/mnist/lenet.prototxt"),
                  {"data": (64, 1, 28, 28)}, 50),
        CaffeCase("CaffeNet b8", shared(corpus, "models/bvlc_reference_caffenet/deploy.prototxt"),
                  {"data": (8, 3, 227, 227)}, 10, gemm_bound=True),
        CaffeCase("GoogLeNet b4", shared(corpus, "models/bvlc_googlenet/deploy.prototxt"),
                  {"data": (4, 3, 224, 224)}, 10),
        CaffeCase("ResNet-50 b2", shared(
            "corpus/KaimingHe__deep-residual-networks/prototxt/ResNet-50-deploy.prototxt"),
            {"data": (2, 3, 224, 224)}, 10),
        CaffeCase("seed Siamese b4", shared("seeds/siamese_imagenet_v1.prototxt"), pair, 5,
                  gemm_bound=True),
    ]


def write_timing_net(case: CaffeCase, path: Path) -> None:
    """The case's net as both tools time it: an Input layer of the case's shapes in place
    of the data layers (and of legacy ``input:`` fields), ``force_backward: true``."""
    from google.protobuf import text_format

    from caffe2torch.io import read_net
    from caffe2torch.proto import caffe_pb2

    net = read_net(case.prototxt)
    out = caffe_pb2.NetParameter(name=net.name, force_backward=True)
    data = out.layer.add(name="timing_input", type="Input")
    for top, shape in case.inputs.items():
        data.top.append(top)
        data.input_param.shape.add().dim.extend(shape)
    for layer in net.layer:
        if layer.type not in DATA_TYPES:
            out.layer.add().CopyFrom(layer)
    path.write_text(text_format.MessageToString(out))


@dataclass
class TimedRun:
    ms: float  # "Average Forward-Backward"
    layers: dict[str, float]  # forward + backward ms per layer
    peak_rss_mb: float  # the process's peak resident memory
    peak_anon_mb: float  # the peak of its anonymous memory (data, not library code)


# Linux keeps a process's peak RSS across fork and exec: a command forked from this
# (large) process would report at least this process's size. A small launcher forks it
# instead and writes the command's own peak (os.wait4's ru_maxrss, KB) to a file, and the
# peak of its anonymous memory (RssAnon: its data, without the pages of library code it
# has read in), sampled from /proc every 5 ms: both tools keep their blobs' memory from
# the first iteration on, so the plateau is sampled many times.
_LAUNCHER = """import os, sys, time
pid = os.fork()
if pid == 0:
    os.execvp(sys.argv[2], sys.argv[2:])
anon = 0
while True:
    done, status, usage = os.wait4(pid, os.WNOHANG)
    if done:
        break
    try:
        for line in open("/proc/%d/status" % pid):
            if line.startswith("RssAnon:"):
                anon = max(anon, int(line.split()[1]))
    except OSError:
        pass
    time.sleep(0.005)
open(sys.argv[1], "w").write("%d %d" % (usage.ru_maxrss, anon))
sys.exit(os.waitstatus_to_exitcode(status))
"""


def _run_measured(command: list[str],
                  env: dict[str, str]) -> tuple[str, int, float, float]:
    """Output, exit status, peak RSS and peak anonymous RSS (MB) of ``command``."""
    with tempfile.TemporaryDirectory() as tmp:
        peak_file = os.path.join(tmp, "peak")
        done = subprocess.run([sys.executable, "-S", "-c", _LAUNCHER, peak_file, *command],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
                              text=True, check=False)
        peaks = Path(peak_file).read_text().split() if os.path.exists(peak_file) else ["0", "0"]
    return done.stdout, done.returncode, float(peaks[0]) / 1024, float(peaks[1]) / 1024


def _run(command: list[str], env: dict[str, str]) -> TimedRun:
    text, code, peak, anon = _run_measured(command, env)
    found = _TOTAL.search(text)
    if code != 0 or found is None:
        tail = "\n".join(text.splitlines()[-8:])
        raise RuntimeError(f"`{' '.join(command)}` failed (exit {code}):\n{tail}")
    layers: dict[str, float] = {}
    for name, _, ms in _LAYER.findall(text):
        layers[name] = layers.get(name, 0.0) + float(ms)
    return TimedRun(float(found[1]), layers, peak, anon)


def write_baseline_net(path: Path) -> None:
    """The smallest net both tools time: what each process holds before a real net's
    blobs (libraries, runtime), subtracted from the peaks to compare the nets' memory."""
    path.write_text('layer { name: "data" type: "Input" top: "data" '
                    'input_param { shape { dim: 1 dim: 1 dim: 4 dim: 4 } } }\n'
                    'layer { name: "conv" type: "Convolution" bottom: "data" top: "conv" '
                    'convolution_param { num_output: 1 kernel_size: 1 } }\n'
                    'force_backward: true\n')


def sgemm_rate(env: dict[str, str], n: int = 2048, repeat: int = 5) -> float:
    """FLOP/s of torch.mm on n x n float32 matrices (median of ``repeat``), measured in a
    fresh process that imports caffe2torch first, as the timed runs do (same OpenMP
    settings, see caffe2torch.omp_wait)."""
    code = (f"import caffe2torch, statistics, time, torch\n"
            f"a, b = torch.randn({n}, {n}), torch.randn({n}, {n}); torch.mm(a, b)\n"
            f"ts = []\n"
            f"for _ in range({repeat}):\n"
            f"    t0 = time.perf_counter(); torch.mm(a, b); ts.append(time.perf_counter() - t0)\n"
            f"print(2 * {n}**3 / statistics.median(ts))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, check=True)
    return float(done.stdout.strip().splitlines()[-1])


def net_flops(case: CaffeCase, path: Path) -> int:
    """FLOPs of one forward+backward of the timing net (TRAIN phase, as `time`)."""
    from torch.utils.flop_counter import FlopCounterMode

    import caffe2torch as c2t

    net = c2t.load_net(str(path), phase="TRAIN")
    feed = {k: (torch.randint(0, 2, s).float() if k.startswith("label") else torch.randn(s))
            for k, s in case.inputs.items()}
    with FlopCounterMode(display=False) as counter:
        out = net(feed)
        loss = net.loss(out) if net.loss_weights else sum(
            o.sum() for o in out.values() if o.is_floating_point())
        loss.backward()  # type: ignore[union-attr]
    return int(counter.get_total_flops())


def report_memory(report: Report, name: str, ours: TimedRun, theirs: TimedRun,
                  base_ours: TimedRun, base_caffe: TimedRun) -> None:
    """Each tool's peak memory for the net, over what it holds timing a one-layer net:
    the whole resident set, and its anonymous part (data: blobs, diffs, buffers) without
    the pages of library code a net's kernels read in (oneDNN and MKL are large)."""
    for label, kind, attr in (("peak memory", "peak RSS", "peak_rss_mb"),
                              ("peak data memory", "peak anonymous RSS", "peak_anon_mb")):
        o0, c0 = getattr(base_ours, attr), getattr(base_caffe, attr)
        net_ours = getattr(ours, attr) - o0
        net_caffe = getattr(theirs, attr) - c0
        report.add("caffe", f"{name} {label} of the net vs caffe time",
                   f"{net_ours:.0f} vs {net_caffe:.0f} MB = {net_ours / net_caffe:.2f}x",
                   "<= 1.0x", net_ours <= net_caffe,
                   f"{kind} over each tool's own one-layer net ({o0:.0f} / {c0:.0f} MB): "
                   f"whole process {getattr(ours, attr):.0f} vs {getattr(theirs, attr):.0f} MB")


def _geomean(values: list[float]) -> float:
    return float(torch.tensor(values).log().mean().exp())


def run(report: Report, quick: bool) -> None:
    caffe = CAFFE_EXE
    if caffe is None:
        report.notes.append("caffe: skipped (give the Caffe executable: --caffe PATH)")
        print("  skipped: no --caffe PATH")
        return
    env = dict(os.environ, GLOG_logtostderr="1")
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(
        os.pathsep)
    threads = torch.get_num_threads()
    env.update(OMP_NUM_THREADS=str(threads), OPENBLAS_NUM_THREADS=str(threads),
               MKL_NUM_THREADS=str(threads))
    rate = sgemm_rate(env)
    report.add("caffe", "sgemm rate (torch.mm 2048^2)", f"{rate / 1e9:.0f} GFLOP/s", "", None,
               f"{threads} threads")
    pairs = 1 if quick else 3
    ratios = []
    with tempfile.TemporaryDirectory() as tmp:
        baseline = Path(tmp) / "baseline.prototxt"
        write_baseline_net(baseline)
        base_ours = _run([sys.executable, "-m", "caffe2torch", "time", "--model",
                          str(baseline), "--iterations", "2"], env)
        base_caffe = _run([caffe, "time", "-model", str(baseline), "-iterations", "2"], env)
        for case in cases():
            path = Path(tmp) / (re.sub(r"\W+", "_", case.name) + ".prototxt")
            write_timing_net(case, path)
            iters = max(2, case.iterations // (3 if quick else 1))
            ours_cmd = [sys.executable, "-m", "caffe2torch", "time", "--model", str(path),
                        "--iterations", str(iters)] + (["--compile"] if COMPILE else [])
            caffe_cmd = [caffe, "time", "-model", str(path), "-iterations", str(iters)]
            pair_ratios, ours_ms, caffe_ms = [], [], []
            layers_ours: dict[str, float] = {}
            layers_caffe: dict[str, float] = {}
            ours = theirs = base_ours
            for k in range(pairs):
                order = (caffe_cmd, ours_cmd) if k % 2 == 0 else (ours_cmd, caffe_cmd)
                got = {id(c): _run(c, env) for c in order}
                theirs, ours = got[id(caffe_cmd)], got[id(ours_cmd)]
                layers_caffe, layers_ours = theirs.layers, ours.layers
                caffe_ms.append(theirs.ms)
                ours_ms.append(ours.ms)
                pair_ratios.append(theirs.ms / ours.ms)
            ratio = statistics.median(pair_ratios)
            ratios.append(ratio)
            flops = net_flops(case, path)
            o_med, c_med = statistics.median(ours_ms), statistics.median(caffe_ms)
            share_o = flops / (o_med / 1e3) / rate
            share_c = flops / (c_med / 1e3) / rate
            worst = sorted(layers_ours, key=lambda n: -layers_ours[n])[:3]
            slow = ", ".join(f"{n} {layers_ours[n]:.0f}/{layers_caffe.get(n, float('nan')):.0f}"
                             for n in worst)
            report.add("caffe", f"{case.name} fwd+bwd vs caffe time",
                       f"{ratio:.2f}x ({o_med:.0f} vs {c_med:.0f} ms)",
                       f">= {GOALS['each']}x", ratio >= GOALS["each"],
                       f"sgemm share ours {share_o:.0%} / Caffe {share_c:.0%} of "
                       f"{flops / 1e9:.1f} GFLOP; heaviest layers ours/Caffe ms: {slow}")
            report_memory(report, case.name, ours, theirs, base_ours, base_caffe)
            if case.gemm_bound:
                report.add("caffe", f"{case.name} share of sgemm rate", f"{share_o:.0%}",
                           f">= {GOALS['sgemm']:.0%}", share_o >= GOALS["sgemm"],
                           f"Caffe {share_c:.0%}")
    gm = _geomean(ratios)
    report.add("caffe", "geomean fwd+bwd vs caffe time", f"{gm:.2f}x",
               f">= {GOALS['geomean']}x", gm >= GOALS["geomean"], f"{len(ratios)} nets")
    from bench.bench_caffe_train import run_case

    run_case(report, caffe, quick)  # a whole `caffe train` run (bench_caffe_train.py)
    from bench.bench_caffe_memory import run_cases

    run_cases(report, caffe, quick)  # training steps' peak memory (bench_caffe_memory.py)
