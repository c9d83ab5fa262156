"""Run the benchmarks, print the table and write it to docs/benchmarks.md.

    python -m bench [--quick] [--only NAME ...] [--threads N] [--no-write] [--caffe PATH]
    python bench/run.py ...

Every comparison is a ratio of two things measured side by side in the same run: the
repetitions of A and B are interleaved and each A is set against the B next to it, so that
load from other processes on the machine falls on both alike.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import time

if __package__ in (None, ""):  # python bench/run.py
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch

from bench.common import Report, machine

BENCHMARKS = {
    "models": ("bench.bench_models", "converted vs hand-written"),
    "weights": ("bench.bench_weights", "caffemodel load"),
    "build": ("bench.bench_build", "build time"),
    "lint": ("bench.bench_lint", "lint time"),
    "data": ("bench.bench_data", "data pipeline"),
    "multibox": ("bench.bench_multibox", "SSD MultiBoxLoss fwd+bwd"),
    "train": ("bench.bench_train", "training step and memory"),
    "pycaffe": ("bench.bench_pycaffe", "pycaffe API"),
    "export": ("bench.bench_export", "ONNX export"),
    "caffe": ("bench.bench_caffe", "fwd+bwd and training against BVLC Caffe (needs --caffe PATH)"),
    "caffe-train": ("bench.bench_caffe_train", "training against BVLC Caffe (needs --caffe PATH)"),
    "caffe-memory": ("bench.bench_caffe_memory",
                     "training peak memory against BVLC Caffe (needs --caffe PATH)"),
    "gpu": ("bench.bench_gpu", "channels_last, CUDA graphs, AMP, pinned copy-ahead"),
}
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

ANALYSIS = """## What the profiles showed, and what was changed

- **Shape inference at build time** (cProfile of `load_net` on Inception-ResNet-v2): more
  than half of the build was spent running every layer on meta tensors to learn its top
  shapes. Convolution, Pooling, InnerProduct, Concat, Split, Eltwise, Softmax, LRN,
  BatchNorm, Scale, ReLU and Dropout now state their top shapes (`infer_shapes`, the
  registry's existing hook) from the geometry their builders already checked; other types
  still use the meta forward.
- **Builds grew faster than linearly** with the number of layers: Python's cyclic garbage
  collector rescanned the growing set of long-lived objects (modules, parameters, protobuf
  messages) at every allocation threshold. `build_net` and the parse in `load_net` run with
  the collector paused (`caffe2torch.graph.builder.gc_paused`).
- **BatchNorm + Scale** (ResNet's pattern): the separate Scale product kept the normalised
  tensor alive for its backward, one activation more per convolution than PyTorch's affine
  BatchNorm2d. When a BatchNorm's only reader is an in-place Scale right after it, the
  graph runs the pair as one `batch_norm` call (`self.scale_x(conv, folded = True)` in
  `net.code`); with batch statistics (TRAIN) the module still runs BatchNorm first.
- **In-place ReLU**: Caffe's in-place ReLU now overwrites its bottom
  (`self.relu(x, inplace = True)`) when the bottom is a fresh tensor made by the layer just
  before (convolution, inner product, normalisation, pooling, LRN, Eltwise SUM) and nothing
  else reads it, as `nn.ReLU(inplace=True)` does: one allocation and one activation fewer.
- **Inference** (torch.profiler of ResNet-50 and GoogLeNet against the hand-written nets:
  the same convolutions, but ~5 ms per ResNet-50 forward in six small ops per BatchNorm
  that turned its blobs into statistics, a pooling geometry worked out at every forward,
  LRN allocating four buffers where two do). BatchNorm's statistics are reused until a
  blob's version or storage changes (always recomputed inside a traced graph), pooling
  geometries are cached per input size, and LRN's chain runs in place. Inference went from
  0.91-0.96x to 0.975-0.994x.
- **ImageData rows** (line profile of the 0-worker feeder): a uint8 and a float32 copy of
  every row, np.stack into a fresh 20 MB batch, a numpy Generator seeded per row (~15 us)
  and numpy's strided HWC->CHW cast. A row is now cropped and flipped as H x W x C, split
  by OpenCV into reused uint8 planes and converted in one contiguous pass straight into its
  row of the batch; batch arrays are reused once the consumer has dropped them (reference
  count); crops and mirrors come from splitmix64 over the row's planned seed.
- **Data workers**: torch's DataLoader sent every batch through a new shared-memory
  segment, and creating and first-touching 20 MB costs ~17 ms, more than decoding the 32
  images in it (1 worker: 780 img/s where the main process alone read 1,800). The feeder
  now runs its own workers over a ring of shared slots that are reused
  (caffe2torch/data/workers.py); the main process only plans rows and hands slots out.

Remaining gap, data pipeline: the rows still cost ~70-100 us per image beside a 300-370 us
decode: the float32 row itself is 620 KB written to memory that is not in cache (~25 us),
the crop, flip and channel split ~15 us, Python's per-row bookkeeping ~20 us, and the decode
runs 10-20 us slower than in a bare loop because that write evicts its working set. On
this virtual machine the rates also move by +-10% from run to run (the raw decode rate of
one process ranged 2,550-3,400 img/s in one afternoon), so one run's ratio is +-0.1. A GPU
run would go further by sending uint8 crops and converting on the device; that changes
what a data layer hands the net, so it is not done.

Beyond eager PyTorch (issue 21):

- **Persistent gradient buffers** (`caffe2torch/layers/grad_buffers.py`): autograd gave
  InnerProduct a freshly allocated weight gradient each step; at 12544 -> 4096 and batch 4
  that is 205 MB allocated and first-touched per step, more than the GEMM. While the
  solver (and `time`) hold a `GradBuffers` active, InnerProduct and Embed write their
  weight gradient into a buffer kept across iterations, overwriting it after a clear and
  accumulating after (shared params, `iter_size`), as Caffe's gemm with beta 1 into a kept
  diff. Everywhere else (user code, pycaffe's backward, `torch.autograd.grad`, autocast,
  compiled graphs) autograd owns the gradient as before.
- **OpenMP wait policy** (`caffe2torch/omp_wait.py`): on an oversubscribed machine
  (1-minute load above the cores) libgomp's spinning workers took the CPU from the thread
  with work: LeNet fwd+bwd 1.0-1.6 s with the default policy, 0.04-0.12 s with
  `OMP_WAIT_POLICY=PASSIVE` (interleaved runs, load ~12 on 2 cores). The package sets
  PASSIVE when the load exceeds the cores, before torch loads, unless the user chose.
- **Compiled execution** (`compile=True`, `--compile`; `caffe2torch/graph/compile.py`):
  off by default. LeNet b64 fwd+bwd under load: 26 ms eager, 33 ms compiled, after
  ~120 s of compiling; on the CPU the time of these nets is in oneDNN convolutions and
  GEMMs that eager already calls.
- **Conv + BatchNorm (+ Scale) folding** (`fold_conv_bn=True`; `caffe2torch/graph/fold.py`):
  ResNet-50 b2 inference 9.9 -> 8.0 s per forward in one loaded interleaved run (1.24x;
  53 chains folded; rel. difference ~3e-7). Off by default: not bit-exact.
- **Prefetch thread** (`caffe2torch/data/prefetch.py`): on the CPU with no worker
  processes, the feeder's next batch is read in a thread while the net runs (Caffe's
  prefetch thread) when there are two cores or more and the first batch took >= 2 ms to
  read; same batches, same order. The thread reads ahead only while a moving average of
  the read's CPU time stays >= 2 ms: with ImageData's decoded-image cache warm, an MNIST
  Siamese batch (2 x 64 rows) costs ~1.1 ms, and a thread taking a core from torch's
  parallel regions costs the net more than that.
- **OpenMP spin during training** (`omp_wait.bound_spin`): `caffe2torch train` and `demo`
  set `GOMP_SPINCOUNT=1000` unless the wait policy is decided (by the user, or PASSIVE
  from the load at start). With libgomp's default spin the Siamese list solver ran at
  1.2-3.2 it/s against 8-14 it/s with PASSIVE once others loaded the machine (load 4-6 on
  2 cores; spin count 20000: 3.6-5.8 it/s, 1000: 8-11); a run of minutes outlives the load
  it started under. Not measured on an idle machine.
- **Per-step Python overhead** (cProfile of a generated 1000-layer residual net's
  forward+backward, batch 1, 8x8x8): 228 ms per step at 1000 layers, 90 ms at 250 (per
  layer 228 vs 361 us under load; no growth with depth); Python-side time (module calls,
  getattr) is ~10 us per layer, the rest is in the ops and autograd's engine.
- **channels_last** (`channels_last=True`, `--channels-last` on train/test/time;
  `caffe2torch/graph/layout.py`): 4-D params and inputs laid out NHWC, same values within
  the golden tolerances. On this CPU, one quick run on a heavily loaded machine
  (`python -m bench --only gpu --quick`, 2 pairs, plain/NHWC time): fwd+bwd LeNet b64
  1.22x, CaffeNet b8 1.04x, GoogLeNet b4 1.41x, ResNet-50 b2 0.76x, seed Siamese b4 1.16x;
  inference 1.04x, 1.52x, 0.71x, 1.43x, 1.08x. Mixed and noisy, so off by default on the
  CPU; on a GPU the solver turns it on with `--amp` (tensor-core convolutions are NHWC).
- **GPU path** (no GPU here; `python -m bench --only gpu` reports "no CUDA device" and
  takes the numbers where one is present): `--cuda-graph` replays each fixed-shape
  forward/backward as one captured CUDA graph after 3 eager warm-up passes on a side
  stream (`caffe2torch/solver/cuda_graph.py`; diffs cleared by the graph, `iter_size`
  sums kept aside, the update after it; falls back to eager with the reason logged for a
  CPU device, a compiled net, a Python layer, other batch shapes or a failed capture);
  batches for a net on a GPU are copied from pinned memory on a side stream one step
  ahead (`caffe2torch/runtime/pinned.py`). Tested with CUDA faked.
"""


def render(report: Report, command: str, info: dict[str, str], seconds: float) -> str:
    lines = [
        "# Benchmarks",
        "",
        "Generated by the benchmark suite in `bench/` (not part of the tests). Command:",
        "",
        f"    {command}",
        "",
        "Machine and versions: " + ", ".join(f"{k} {v}" for k, v in info.items()) + ".",
        f"Total run time {seconds:.0f} s.",
        "",
        "Every ratio compares two things measured side by side in the same run: the "
        "repetitions of A and B are interleaved (A B B A A B ...), the times shown are their "
        "medians, and a speed ratio is the median over adjacent A/B pairs of time(B) / "
        "time(A) (\"pairs\" in the table), which cancels the slow drifts of a machine whose "
        "cores are shared with other work (a few hundred pairs for the fast cases); the two "
        "medians can differ from it by a few percent when one side has more slow outliers. "
        "Speed ratios are hand-written time / converted time (>= 1: the converted module is "
        "at least as fast).",
        "",
        "| benchmark | case | measured | goal | met | note |",
        "|---|---|---|---|---|---|",
    ]
    for r in report.rows:
        met = "" if r.ok is None else ("yes" if r.ok else "**no**")
        lines.append(f"| {r.benchmark} | {r.case} | {r.measured.strip()} | {r.goal} | {met} | "
                     f"{r.note} |")
    if report.notes:
        lines += ["", "Notes:", ""] + [f"- {n}" for n in report.notes]
    lines += ["", ANALYSIS]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="caffe2torch benchmarks")
    ap.add_argument("--quick", action="store_true", help="fewer repetitions and cases")
    ap.add_argument("--only", nargs="+", choices=sorted(BENCHMARKS), help="benchmarks to run")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch intra-op threads (default: torch's own choice)")
    ap.add_argument("--no-write", action="store_true", help="do not write docs/benchmarks.md")
    ap.add_argument("--out", default=os.path.join(ROOT, "docs", "benchmarks.md"))
    ap.add_argument("--caffe", metavar="PATH", default=None,
                    help="a BVLC Caffe executable: runs the 'caffe' benchmark against it")
    ap.add_argument("--compile", action="store_true",
                    help="the 'caffe' benchmark times caffe2torch with --compile")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    from bench import bench_caffe

    bench_caffe.CAFFE_EXE = args.caffe
    bench_caffe.COMPILE = args.compile
    command = "python -m bench " + " ".join(sys.argv[1:] if argv is None else argv)
    info = machine()
    print(command)
    print(", ".join(f"{k} {v}" for k, v in info.items()))
    report = Report()
    t0 = time.perf_counter()
    for name in args.only or list(BENCHMARKS):
        module, title = BENCHMARKS[name]
        print(f"\n== {title}", flush=True)
        importlib.import_module(module).run(report, args.quick)
    seconds = time.perf_counter() - t0
    for n in report.notes:
        print("note:", n)
    if not args.no_write:
        text = render(report, command.strip(), info, seconds)
        if args.only and os.path.exists(args.out):
            print(f"(--only: {args.out} not overwritten; use --out to write elsewhere)")
        else:
            with open(args.out, "w") as f:
                f.write(text)
            print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
