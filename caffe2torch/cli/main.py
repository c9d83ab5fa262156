"""``caffe2torch VERB ...``: the dispatcher. Each verb module gives ``add_parser`` (its
arguments) and ``run`` (returns the exit code); a new verb is one module and one line in
``VERBS``."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from types import ModuleType

from caffe2torch import __version__
from caffe2torch.cli import (
    common,
    compare,
    convert,
    demo,
    device_query,
    draw,
    export,
    info,
    lint,
    pairs,
    plot,
    run,
    test,
    time,
    train,
    triplets,
    upgrade,
)
from caffe2torch.errors import CaffeError

VERBS: list[ModuleType] = [upgrade, info, lint, demo, export, convert, draw]
VERBS += [train, test, time, device_query, plot]
VERBS += [pairs, triplets]
VERBS += [run, compare]


EPILOG = """\
examples:
  caffe2torch demo                                   # train the built-in Siamese example
  caffe2torch lint train_val.prototxt solver.prototxt
  caffe2torch train -solver solver.prototxt
  caffe2torch export deploy.prototxt -w w.caffemodel -o model.onnx --verify

Files a verb writes are named with -o/--out FILE. Exit codes: 0 ok, 1 findings or a
failed run, 2 usage or I/O error."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="caffe2torch",
        description="Caffe nets, weights and solvers in PyTorch, with Caffe's numerics. "
        "Caffe's one-dash long flags (-solver, -model, -weights) work too. "
        "`caffe2torch VERB --help` explains a verb, with examples.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"caffe2torch {__version__}")
    sub = parser.add_subparsers(dest="verb", metavar="VERB")
    sub.required = True
    for verb in VERBS:
        verb.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the exit code (0 ok, 1 failed run, 2 usage or I/O error)."""
    args_in = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    try:
        args = parser.parse_args(common.normalize_argv(args_in))
    except SystemExit as e:  # --help, --version, usage errors
        return e.code if isinstance(e.code, int) else common.USAGE
    args.argv = args_in  # as given, for a verb that starts itself again (train -gpu all)
    try:
        return int(args.run(args))
    except CaffeError as e:
        return common.report(e)
    except BrokenPipeError:  # `caffe2torch info x | head`: the reader left, not an error
        common.silence_stdout()
        return common.OK
    except KeyboardInterrupt:
        return 130
    except Exception as e:  # a bug of ours: a short report instead of a traceback
        if os.environ.get("CAFFE2TORCH_DEBUG"):
            raise
        print(f"caffe2torch {args.verb}: internal error: {type(e).__name__}: "
              f"{common.printable(str(e))[:500]}\n  help: this is a bug in caffe2torch; "
              "run again with CAFFE2TORCH_DEBUG=1 for the traceback and report it with "
              "the command line", file=sys.stderr)
        return common.FAILED


if __name__ == "__main__":
    sys.exit(main())
