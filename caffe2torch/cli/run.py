"""``caffe2torch run SCRIPT [ARGS...]``: a pycaffe script, unchanged, on caffe2torch."""

from __future__ import annotations

import argparse
import linecache
import os
import runpy
import sys
import traceback

from caffe2torch.cli import common
from caffe2torch.errors import CaffeError

DESCRIPTION = """\
Run a Python script written for Caffe's Python interface (pycaffe), unchanged. Inside the
script `import caffe` (and caffe.io, caffe.proto.caffe_pb2, caffe.draw, caffe.net_spec,
caffe.coord_map...) is caffe2torch's pycaffe: Caffe's Python interface running on
PyTorch. The script runs as __main__ with sys.argv = [SCRIPT, ARGS...] and its own folder
first on sys.path, as `python SCRIPT ARGS` would run it; ARGS are passed on untouched.

With --proto PATH (the fork's src/caffe/proto/caffe.proto), the script gets that Caffe
fork's schema, as a pycaffe built from the fork would: caffe.proto.caffe_pb2 is the fork's
generated module (its messages, fields and enums; `text_format.Merge(text,
caffe_pb2.NetParameter())` reads the fork's prototxt), and caffe.Net, caffe.Classifier,
caffe.Detector and the solvers read nets, solvers and caffemodels with the fork's field
numbers; Net.save writes them so. The .proto is compiled once and cached (see the net
verbs' --proto).

In your own code, `import caffe2torch.pycaffe as caffe` does the same without this verb.

Exit codes: the script's own (sys.exit); 0 when it ends normally; 1 when it raises (its
traceback is printed, as Python prints it); caffe2torch's own code for an error it reports
(e.g. 2 for a missing prototxt), printed with the script line that led to it; 2 when
SCRIPT cannot be read, or the --proto schema cannot be read or does not compile (its file
and line are named)."""

EXAMPLES = """\
examples:
  caffe2torch run classify.py --model deploy.prototxt --weights net.caffemodel cat.jpg
  caffe2torch run train_lenet.py
  caffe2torch run --proto caffe-enet/src/caffe/proto/caffe.proto BN-absorber-enet.py \\
      --model enet_deploy.prototxt --weights enet.caffemodel --out_dir final"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--proto", metavar="PATH",
                   help="the caffe.proto of the Caffe fork the script was written for (its "
                   "src/caffe/proto/caffe.proto): caffe.proto.caffe_pb2 is that schema, and "
                   "nets, solvers and weights are read and written with its fields and "
                   "numbers. Give it before SCRIPT")
    p.add_argument("script", metavar="SCRIPT", help="the Python script to run")
    p.add_argument("script_args", nargs=argparse.REMAINDER, metavar="ARGS",
                   help="arguments for the script, passed on as given")


def _raw_script_args(args: argparse.Namespace) -> list[str]:
    """The script's arguments exactly as typed (the dispatcher rewrites Caffe-style
    one-dash flags, which must not happen to a script's own arguments)."""
    raw = list(getattr(args, "argv", None) or [])
    try:
        at = raw.index("run")
        return raw[raw.index(args.script, at + 1) + 1:]
    except ValueError:
        return list(args.script_args)


def run_script(path: str, argv: list[str], proto: str | None = None) -> int:
    """Run ``path`` as __main__ with the caffe alias (and, with ``proto``, the fork's
    schema: pycaffe.schema); returns its exit code."""
    from caffe2torch.pycaffe import alias, schema

    before = schema.use(proto) if proto is not None else schema.active()
    alias.install()
    saved_argv, saved_path = sys.argv, list(sys.path)
    sys.argv = [path, *argv]
    sys.path.insert(0, os.path.dirname(os.path.abspath(path)))
    try:
        runpy.run_path(path, run_name="__main__")
    except SystemExit as exc:
        code = exc.code
        if code is None:
            return common.OK
        if isinstance(code, int):
            return code
        print(code, file=sys.stderr)
        return common.FAILED
    except CaffeError as exc:  # printed as the dispatcher does, with the script's line
        code = common.report(exc)
        where = _script_line(exc, path)
        if where:
            print(f"  in {where}", file=sys.stderr)
        return code
    except KeyboardInterrupt:  # the dispatcher's own handling (exit 130)
        raise
    except BaseException:  # the script's own failure: Python's traceback, without ours
        # (BaseException too: flownet2's run-flownet.py raises one for a missing file)
        etype, value, tb = sys.exc_info()
        if isinstance(value, SyntaxError) and value.filename in (path, os.path.abspath(path)):
            _syntax_error(path, value)
            return common.FAILED
        while tb is not None and tb.tb_frame.f_code.co_filename != os.path.abspath(path) \
                and tb.tb_frame.f_code.co_filename != path:
            tb = tb.tb_next
        traceback.print_exception(etype, value, tb or getattr(value, "__traceback__", None))
        return common.FAILED
    finally:
        sys.argv = saved_argv
        sys.path[:] = saved_path
        if proto is not None:
            schema.use(before)
    return common.OK


def _script_line(exc: BaseException, path: str) -> str | None:
    """'SCRIPT, line N: source' of the script's last frame in the traceback (the call
    that failed, e.g. ``caffe.Net(...)`` after ``caffe.set_mode_gpu()`` without a GPU)."""
    files = (path, os.path.abspath(path))
    found = None
    for frame, lineno in traceback.walk_tb(exc.__traceback__):
        if frame.f_code.co_filename in files:
            found = lineno
    if found is None:
        return None
    source = linecache.getline(os.path.abspath(path), found).strip()
    return f"{path}, line {found}" + (f": {source}" if source else "")


def _syntax_error(path: str, exc: SyntaxError) -> None:
    """The script does not compile: Python's own report (runpy's frames left out) and a
    note for the common case of a script written for Python 2."""
    sys.stderr.write("".join(traceback.format_exception_only(type(exc), exc)))
    print(f"note: {path} does not compile on Python {sys.version_info[0]}."
          f"{sys.version_info[1]}; a script written for Python 2 (print statements, "
          "exec statements, old except syntax) needs converting first, e.g. with 2to3",
          file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    path = args.script
    if not os.path.isfile(path):
        print(f"caffe2torch run: error: {path}: no such script", file=sys.stderr)
        return common.USAGE
    return run_script(path, _raw_script_args(args), getattr(args, "proto", None))
