"""``caffe2torch VERB ...``: the dispatcher. Each verb is a module of this package that
gives ``add_arguments`` (its arguments), ``DESCRIPTION``, ``EXAMPLES`` and ``run``
(returns the exit code); a new verb is one module and one line in ``VERBS``.

Only the module of the verb being run is imported: ``caffe2torch --help`` lists the verbs
from ``VERBS`` alone, and ``caffe2torch lint FILE`` loads none of the other verbs
(tests/cli/test_startup.py)."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from caffe2torch import __version__
from caffe2torch.cli import common
from caffe2torch.errors import CaffeError

# verb (its module: caffe2torch.cli.<verb>) -> its line in `caffe2torch --help`
VERBS: dict[str, str] = {
    "upgrade": "rewrite an old (V0/V1) net, solver or caffemodel in the current format",
    "info": "list a net's layers per phase (prototxt or caffemodel)",
    "lint": "explain what is wrong with a net or solver prototxt, where, and how to fix it",
    "demo": "train the built-in Siamese example on bundled MNIST digits",
    "export": "export a net's deploy view to ONNX (checked with onnxruntime on --verify)",
    "convert": "write a net as a standalone PyTorch .py file plus its weights",
    "draw": "draw a net as SVG (built in), or DOT, PNG, PDF (Graphviz)",
    "train": "train a net from a solver prototxt (Caffe's `caffe train`)",
    "test": "score a net over N batches (Caffe's `caffe test`)",
    "time": "per-layer forward/backward times (Caffe's `caffe time`)",
    "device_query": "show the GPUs (or the CPU) training can use",
    "plot": "loss/accuracy curves from a metrics CSV or a Caffe log",
    "pairs": "write aligned Siamese pair lists from labelled images",
    "triplets": "write aligned triplet lists from labelled images",
    "run": "run a pycaffe script unchanged ('import caffe' runs on caffe2torch)",
    "compare": "find the first layer whose output differs from real Caffe's (or onnxruntime's)",
}


EPILOG = """\
examples:
  caffe2torch demo                                   # train the built-in Siamese example
  caffe2torch lint train_val.prototxt solver.prototxt
  caffe2torch train -solver solver.prototxt
  caffe2torch export deploy.prototxt -w w.caffemodel -o model.onnx --verify

Files a verb writes are named with -o/--out FILE. Exit codes: 0 ok, 1 findings or a
failed run, 2 usage or I/O error."""


def build_parser(verb: str | None = None, others: bool = True) -> argparse.ArgumentParser:
    """The whole command line; with ``verb``, only that verb gets its arguments (its module
    is imported) and, with ``others``, the other verbs are names with their help line,
    enough for the verb list, for `caffe2torch --help` and for argparse's "invalid choice"
    message."""
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
    for name, help_line in VERBS.items():
        if verb is not None and name != verb:
            if others:
                sub.add_parser(name, help=help_line)
            continue
        module = importlib.import_module(f"caffe2torch.cli.{name}")
        p = sub.add_parser(name, help=help_line, description=module.DESCRIPTION,
                           epilog=module.EXAMPLES,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_arguments(p)
        p.set_defaults(run=module.run)
    return parser


def verb_of(argv: Sequence[str]) -> str:
    """The first argument that is not a flag, "" when there is none: the verb argparse
    dispatches to, if any (the top-level flags take no value; where argparse takes an
    argument such as '--' or '-1' for the verb, it refuses it and lists every verb)."""
    return next((a for a in argv if not a.startswith("-")), "")


# Caffe's verbs take their file with a flag; `caffe train solver.prototxt` prints usage
FILE_FLAGS = {"train": "solver", "test": "model", "time": "model"}


def bare_file_for_flag(argv: Sequence[str], given: Sequence[str]) -> str | None:
    """The message for ``caffe2torch train solver.prototxt`` (the file right after a verb
    whose file goes with a flag, and that flag not given): the command to type instead.
    ``argv`` is normalized (--flags), ``given`` the same arguments as typed."""
    flag = FILE_FLAGS.get(argv[0]) if argv else None
    if flag is None or len(argv) < 2 or argv[1].startswith("-"):
        return None
    if any(a == f"--{flag}" or a.startswith(f"--{flag}=") for a in argv):
        return None
    rest = " ".join(given[2:])
    return (f"the {flag} is given with -{flag}, as in Caffe: caffe2torch {argv[0]} "
            f"-{flag} {argv[1]}" + (f" {rest}" if rest else ""))


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the exit code (0 ok, 1 failed run, 2 usage or I/O error)."""
    args_in = list(sys.argv[1:] if argv is None else argv)
    normalized = common.normalize_argv(args_in)
    if not normalized:  # `caffe2torch` alone: what it can do, not only "VERB is required"
        build_parser("").print_help(sys.stderr)
        return common.USAGE
    bare = bare_file_for_flag(normalized, args_in)
    if bare is not None:
        print(f"caffe2torch {normalized[0]}: error: {bare}", file=sys.stderr)
        return common.USAGE
    if normalized and normalized[0] in VERBS:  # all that follows is the verb's business
        parser = build_parser(normalized[0], others=False)
    else:
        parser = build_parser(verb_of(normalized))
    try:
        args = parser.parse_args(normalized)
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
