"""``caffe2torch upgrade``: Caffe's upgrade_net_proto_text, upgrade_solver_proto_text and
upgrade_net_proto_binary in one verb, chosen by what the file holds."""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from collections.abc import Iterator

from caffe2torch.cli import common
from caffe2torch.cli.netargs import add_proto_arg
from caffe2torch.errors import CaffeError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("input", metavar="IN", help="net or solver prototxt, or a caffemodel")
    p.add_argument("output_pos", nargs="?", metavar="OUT",
                   help="where to write (Caffe's tools take it as a second argument)")
    p.add_argument("-o", "--out", metavar="FILE", help="where to write (same as OUT)")
    p.add_argument("--output", dest="out", action=common.DeprecatedAlias, new="-o/--out FILE",
                   help=argparse.SUPPRESS)
    add_proto_arg(p)


DESCRIPTION = """\
Rewrite an old Caffe file in the current format, as Caffe's upgrade_net_proto_text,
upgrade_solver_proto_text and upgrade_net_proto_binary tools do; which one is chosen by
what the file holds: a V0/V1 net prototxt becomes V2 (layer { type: "..." }), an old
solver (solver_type: SGD) gets type: "SGD", a V1 binary caffemodel becomes V2.

Text goes to OUT, or to stdout without one; a caffemodel needs OUT. Progress and
warnings go to stderr.

Exit codes: 0 written; 1 written but the upgrade reported problems, or refused (nothing
written); 2 the file cannot be read or parsed, or usage error."""

EXAMPLES = """\
examples:
  caffe2torch upgrade old.prototxt -o new.prototxt
  caffe2torch upgrade old_solver.prototxt > solver.prototxt
  caffe2torch upgrade old.caffemodel new.caffemodel"""


def _output(args: argparse.Namespace) -> str | None:
    if args.out and args.output_pos and args.out != args.output_pos:
        raise _Usage("give the output once: either OUT or -o OUT")
    return args.out or args.output_pos


class _Usage(Exception):
    pass


def run(args: argparse.Namespace) -> int:
    # the readers (numpy, protobuf) load only when a file is upgraded
    from caffe2torch.io.binary import looks_binary, upgrade_caffemodel
    from caffe2torch.io.text import (
        is_solver_text,
        net_from_text,
        net_to_text,
        parse_text_keeping_unknown,
        read_solver_text,
        read_text,
    )
    from caffe2torch.io.upgrade import solver_needs_upgrade
    from caffe2torch.proto import caffe_pb2

    try:
        out = _output(args)
    except _Usage as e:
        print(f"caffe2torch upgrade: error: {e}", file=sys.stderr)
        return common.USAGE
    src = args.input
    if looks_binary(src):
        if out is None:
            print("caffe2torch upgrade: error: a caffemodel is binary: give the output file "
                  "(caffe2torch upgrade IN.caffemodel OUT.caffemodel)", file=sys.stderr)
            return common.USAGE
        with _quiet_upgrade_log():
            report = upgrade_caffemodel(src, out, args.proto)
        _say(src, report.steps)
        return _warn(src, report.warnings)
    text = read_text(src)
    if is_solver_text(text):
        old = parse_text_keeping_unknown(text, caffe_pb2.SolverParameter(), path=src)[0]
        solver = read_solver_text(text, src, args.proto)
        _say(src, ["solver_type -> type"] if solver_needs_upgrade(old) else [])
        _emit(net_to_text(solver), out)
        return common.OK
    with _quiet_upgrade_log():  # _warn prints the report's warnings once, located
        _, source, report = net_from_text(text, src, args.proto)
    for extra in source.extras:
        common.note(f"{src}:{extra.line}:{extra.col}: note: `{extra.text}` is not in caffe2torch's "
                    "schema: left out of the output")
    _say(src, report.steps)
    _emit(net_to_text(report.net), out)
    return _warn(src, report.warnings)


@contextlib.contextmanager
def _quiet_upgrade_log() -> Iterator[None]:
    """Silence the upgrade's log (what Caffe's LOG(ERROR) says while upgrading): this verb
    prints the same warnings itself from the report, so a user would read each twice."""
    log = logging.getLogger("caffe2torch.io.upgrade")
    was = log.disabled
    log.disabled = True
    try:
        yield
    finally:
        log.disabled = was


def _say(src: str, steps: list[str]) -> None:
    if steps:
        common.note(f"{src}: upgraded ({'; '.join(steps)})")
    else:
        common.note(f"{src}: already in the latest format")


def _warn(src: str, warnings: list[str]) -> int:
    for w in warnings:
        print(common.format_error(CaffeError(w, path=src), "warning"), file=sys.stderr)
    return common.FAILED if warnings else common.OK


def _emit(text: str, out: str | None) -> None:
    if out is None:
        sys.stdout.write(text)
        sys.stdout.flush()
    else:
        from caffe2torch.io.binary import atomic_write

        atomic_write(out, [text.encode("utf-8")])
