"""``caffe2torch train``: Caffe's ``caffe train``, driven by a solver prototxt."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from caffe2torch.cli import common
from caffe2torch.cli.netargs import (
    add_image_cache_arg,
    add_proto_arg,
    add_python_layers_arg,
    add_share_arg,
    apply_image_cache,
    build_options,
    share_option,
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--solver", required=True, metavar="S", help="solver prototxt")
    add_proto_arg(p)
    p.add_argument("--weights", metavar="W",
                   help="caffemodel(s) to fine-tune from, comma-separated")
    p.add_argument("--snapshot", metavar="X", help="a .solverstate[.h5] to resume from")
    p.add_argument("--gpu", metavar="ID",
                   help="GPU id; several (0,1) or 'all' train data-parallel, one process per "
                   "GPU; default: the solver's solver_mode")
    p.add_argument("--iterations", type=int, metavar="N", help="override the solver's max_iter")
    p.add_argument("--level", type=int, help="train_state level")
    p.add_argument("--stage", action="append", default=[],
                   help="train_state stage (repeatable; comma lists too)")
    for name, default in (("sigint", "stop"), ("sighup", "snapshot"), ("sigterm", "stop")):
        p.add_argument(f"--{name}_effect", f"--{name}-effect", dest=f"{name}_effect",
                       default=default, choices=["stop", "snapshot", "none"],
                       help=f"what {name.upper()} does (default {default})")
    p.add_argument("--log-csv", "--log_csv", dest="log_csv", metavar="FILE",
                   help="metrics CSV (default <snapshot_prefix>_metrics.csv)")
    p.add_argument("--quiet", "-q", action="store_true", help="no log lines")
    p.add_argument("--tensorboard", metavar="DIR",
                   help="also write the metrics as TensorBoard scalars to DIR (needs the "
                   "tensorboard extra)")
    p.add_argument("--amp", action="store_true",
                   help="mixed precision: bfloat16 on the CPU, float16 + loss scaling on a GPU")
    p.add_argument("--no-progress", action="store_true",
                   help="no progress bar (it shows only when stderr is a terminal)")
    p.add_argument("--workers", type=int, metavar="N",
                   help="data worker processes (default: up to 4 on a GPU, 0 on the CPU, "
                   "where a thread reads the next batch while the net runs)")
    add_image_cache_arg(p)
    p.add_argument("--distributed-backend", choices=["nccl", "gloo"],
                   help="process-group backend under torchrun (default: nccl on GPUs, gloo "
                   "on the CPU)")
    p.add_argument("--compile", action="store_true",
                   help="run the nets through torch.compile (inductor): compiled at the "
                   "first pass, which takes a while on a CPU; pays off on long runs")
    p.add_argument("--channels-last", action="store_true", default=None,
                   help="lay 4-D params and blobs out NHWC (default: on with --amp on a GPU)")
    p.add_argument("--cuda-graph", action="store_true",
                   help="on a GPU, replay each fixed-shape forward/backward as one captured "
                   "CUDA graph (falls back to eager with a logged reason where it cannot)")
    add_share_arg(p)
    add_python_layers_arg(p)


DESCRIPTION = """\
Train a net as Caffe's `caffe train` does, following the solver prototxt (learning rate
policy, momentum, weight decay, test_interval, snapshots). Paths in the solver and its nets
are relative to the working directory, as in Caffe. Caffe's one-dash flags (-solver,
-weights, -snapshot, -gpu) work too.

-weights fine-tunes (copies a caffemodel, or a comma-separated list, by layer name);
-snapshot resumes from a .solverstate (ours or Caffe's). SIGINT, SIGHUP and SIGTERM take
the chosen effect: 'stop' writes a snapshot and exits, 'snapshot' writes one and goes on.
With --proto, snapshots are written in the fork's field numbers, as its Caffe writes them:
resume them with the same --proto (the fork's Caffe reads them too).

Caffe's log lines go to stderr (Caffe's tools/extra/parse_log.py reads them); every
displayed metric also goes to a CSV (default <snapshot_prefix>_metrics.csv) that
`caffe2torch plot` draws.

Several GPUs (-gpu 0,1 or -gpu all) train data-parallel as Caffe does: one process per
GPU, each with the solver's full batch_size on its own shard of the data; the first
process alone logs, tests and snapshots. On the CPU: torchrun --nproc_per_node 2 -m
caffe2torch train -solver S --distributed-backend gloo.

Where it differs from `caffe train` on purpose: a missing snapshot_prefix folder is created
(Caffe refuses to start); -gpu on a machine without CUDA warns and trains on the CPU (Caffe
stops); data layers of one batch_size (a Siamese net's two lists) share one shuffle and
must have as many rows (Caffe shuffles and wraps each on its own, which breaks the pairs);
list lines Caffe would misread (blank, no label, a label such as 0.5) stop with the file
and line, and a list's UTF-8 BOM is dropped (Caffe takes it into the first file name).

Exit codes: 0 done (or stopped by a signal); 1 training failed (the net cannot be built,
the solver asks for something that cannot run); 2 usage or I/O error (a missing solver,
net, list file or image)."""

EXAMPLES = """\
examples:
  caffe2torch train -solver models/mnist_siamese/solver.prototxt
  caffe2torch train -solver solver.prototxt -weights bvlc_alexnet.caffemodel -gpu 0
  caffe2torch train -solver solver.prototxt -snapshot snapshots/net_iter_5000.solverstate
  caffe2torch train -solver solver.prototxt --share auto --amp --tensorboard runs/"""


def _usage(message: str) -> int:
    print(f"caffe2torch train: error: {message}", file=sys.stderr)
    return common.USAGE


def run(args: argparse.Namespace) -> int:
    from caffe2torch.omp_wait import bound_spin

    bound_spin()  # before torch loads: a data thread runs beside the net (omp_wait)
    from caffe2torch.runtime.heap import keep_freed_memory

    keep_freed_memory()  # each iteration reuses the last one's memory (runtime.heap)
    from caffe2torch.errors import SolverError
    from caffe2torch.io import read_solver
    from caffe2torch.runtime.devices import gpu_ids
    from caffe2torch.solver import distributed as ddp
    from caffe2torch.solver.progress import progress_wanted
    from caffe2torch.solver.signals import SignalHandler
    from caffe2torch.solver.solver import get_solver

    if args.iterations is not None and args.iterations < 0:
        return _usage(f"-iterations (the max_iter to train to) must be >= 0, not "
                      f"{args.iterations}")
    if args.snapshot and args.weights:
        return _usage("give a snapshot to resume training or weights to fine-tune, not both")
    apply_image_cache(args)
    try:
        gpus = gpu_ids(args.gpu)
    except ValueError as e:
        return _usage(str(e))
    if args.tensorboard:
        from caffe2torch.solver.tensorboard import summary_writer_class

        try:
            summary_writer_class()  # fail before the long part
        except SolverError as e:
            print(common.format_error(e), file=sys.stderr)
            return common.USAGE
    nproc = ddp.processes_for(gpus)
    if nproc > 1 and not ddp.launched_by_torchrun():
        common.note(f"caffe2torch train: {nproc} GPUs: starting one process per GPU under "
                    "torch.distributed.run")
        return ddp.relaunch(getattr(args, "argv", sys.argv[1:]), nproc)
    stages = [s.strip() for v in args.stage for s in v.split(",") if s.strip()]
    # under torchrun each rank's GPU may come from the solver's solver_mode
    param = read_solver(args.solver, args.proto) if ddp.launched_by_torchrun() else None
    device, group = _device_and_group(param, gpus, args.distributed_backend)
    try:
        solver = get_solver(args.solver, device=device,
                            log=None if args.quiet else sys.stderr,
                            log_csv=args.log_csv or True, weights=args.weights,
                            max_iter=args.iterations, level=args.level, stages=stages,
                            proto=args.proto, build_options=build_options(args),
                            distributed=group, amp=args.amp, tensorboard=args.tensorboard,
                            progress=progress_wanted(False if args.no_progress else None),
                            data_workers=args.workers, share=share_option(args),
                            compile=args.compile, channels_last=args.channels_last,
                            cuda_graph=args.cuda_graph)
        if args.quiet and solver.is_root:  # shown with -q too: training from the fillers
            for warning in solver.weight_warnings:
                common.note(f"caffe2torch train: warning: {warning}")
        try:
            with SignalHandler(args.sigint_effect, args.sighup_effect,
                               args.sigterm_effect) as handler:
                solver.set_action_function(handler)
                solver.solve(args.snapshot)
            if group is not None:
                group.barrier()  # the ranks finish together (rank 0 snapshots last)
        finally:
            solver.close()
    finally:
        if group is not None:
            group.close()
    return common.OK


def _device_and_group(param: Any, gpus: list[int] | None, backend: str | None
                      ) -> tuple[str | None, Any]:
    """The device this process asks for and, under torchrun (where ``param``, the
    SolverParameter, is needed), its process group."""
    from caffe2torch.proto import caffe_pb2
    from caffe2torch.runtime.devices import resolve_device
    from caffe2torch.runtime.glog import GlogWriter
    from caffe2torch.solver import distributed as ddp

    if not ddp.launched_by_torchrun():
        if backend:
            common.note("caffe2torch train: note: --distributed-backend applies under "
                        "torchrun only: training in one process")
        return (f"cuda:{gpus[0] if gpus else 0}" if gpus is not None else None), None
    wants_gpu = param.HasField("solver_mode") and (
        param.solver_mode == caffe_pb2.SolverParameter.GPU)
    if gpus is None and wants_gpu:
        gpus = []  # the solver's GPU mode: one GPU per process
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    requested = ddp.rank_device_request(gpus, local_rank)
    device = resolve_device(param, requested, GlogWriter(None))
    return requested, ddp.init_from_env(backend, device)
