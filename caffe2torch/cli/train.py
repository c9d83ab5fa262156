"""``caffe2torch train -solver S [-weights W | -snapshot X] [-gpu ID] [-iterations N]
[-sigint_effect stop|snapshot|none] [-sighup_effect ...] [--sigterm-effect ...]
[--log-csv FILE]``: Caffe's ``caffe train``.

Paths in the solver and its nets are relative to the working directory, as in Caffe.
``-weights`` fine-tunes (copies a caffemodel, or a comma-separated list, by layer name);
``-snapshot`` resumes from a ``.solverstate`` (ours or Caffe's). SIGINT, SIGHUP and SIGTERM
take the chosen effect: ``stop`` writes a snapshot and exits, ``snapshot`` writes one and
goes on. Caffe's log lines go to stderr (its log parsers read them); every displayed metric
also goes to a CSV (default ``<snapshot_prefix>_metrics.csv``).

Exit codes: 0 done (or stopped by a signal), 1 training failed, 2 usage or I/O error.
"""

from __future__ import annotations

import argparse
import sys

from caffe2torch.cli import common


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train a net from a solver prototxt (Caffe's `caffe train`)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--solver", required=True, metavar="S", help="solver prototxt")
    p.add_argument("--weights", metavar="W",
                   help="caffemodel(s) to fine-tune from, comma-separated")
    p.add_argument("--snapshot", metavar="X", help="a .solverstate[.h5] to resume from")
    p.add_argument("--gpu", metavar="ID",
                   help="GPU id (or 'all': the first); default: the solver's solver_mode")
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
    p.set_defaults(run=run)


def device_flag(value: str | None) -> str | None:
    """``-gpu 0`` / ``-gpu 0,1`` (the first is used) / ``-gpu all`` -> a torch device."""
    if value is None:
        return None
    first = value.split(",")[0].strip()
    if first == "all":
        return "cuda:0"
    if not first.isdigit():
        raise ValueError(f"-gpu {value!r}: expected a device id, a comma list or 'all'")
    return f"cuda:{first}"


def run(args: argparse.Namespace) -> int:
    from caffe2torch.io import read_solver
    from caffe2torch.io.upgrade import snapshot_prefix
    from caffe2torch.solver.signals import SignalHandler
    from caffe2torch.solver.solver import Solver

    if args.snapshot and args.weights:
        print("caffe2torch train: error: give a snapshot to resume training or weights to "
              "fine-tune, not both", file=sys.stderr)
        return common.USAGE
    try:
        device = device_flag(args.gpu)
    except ValueError as e:
        print(f"caffe2torch train: error: {e}", file=sys.stderr)
        return common.USAGE
    param = read_solver(args.solver)
    param.snapshot_prefix = snapshot_prefix(param, args.solver)
    if args.iterations is not None:
        param.max_iter = args.iterations
    if args.level is not None:
        param.train_state.level = args.level
    for stage in (s.strip() for v in args.stage for s in v.split(",")):
        if stage:
            param.train_state.stage.append(stage)
    csv_path = args.log_csv or f"{param.snapshot_prefix}_metrics.csv"
    solver = Solver(param, path=args.solver, device=device,
                    log=None if args.quiet else sys.stderr, log_csv=csv_path,
                    weights=args.weights)
    try:
        with SignalHandler(args.sigint_effect, args.sighup_effect,
                           args.sigterm_effect) as handler:
            solver.set_action_function(handler)
            solver.solve(args.snapshot)
    finally:
        solver.close()
    return common.OK
