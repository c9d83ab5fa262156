"""``caffe2torch lint``: diagnostics for net and solver prototxt files."""

from __future__ import annotations

import argparse
import os
import sys

from caffe2torch.cli import common
from caffe2torch.cli.netargs import add_proto_arg
from caffe2torch.errors import CaffeError
from caffe2torch.lint.codes import CODES, explain
from caffe2torch.lint.context import Options
from caffe2torch.lint.diagnostic import Diagnostic
from caffe2torch.lint.render import FORMATS, render


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("files", nargs="*", metavar="FILE", help="net or solver prototxt files")
    p.add_argument("--format", choices=FORMATS, default="full",
                   help="full (default: each finding with its source line), concise (one "
                   "line each), json or sarif (for editors and CI)")
    p.add_argument("--select", action="append", default=[], metavar="CODES",
                   help="only these codes, prefixes (C2T2) or families (graph); comma list")
    p.add_argument("--ignore", action="append", default=[], metavar="CODES",
                   help="skip these codes, prefixes or families; comma list")
    p.add_argument("--fix", action="store_true",
                   help="rewrite what can be fixed safely (V1 -> V2, quoting types, renames) "
                   "in place; the original is kept as FILE.orig")
    p.add_argument("--diff", action="store_true",
                   help="print what --fix would change as a unified diff; write nothing")
    p.add_argument("--check-data", action="store_true",
                   help="also open the data list files: that the images exist, that pair "
                   "lists align and carry labels 0/1")
    p.add_argument("--weights", metavar="CAFFEMODEL", help="check the net against these weights")
    p.add_argument("--explain", metavar="CODE", help="print what a code means and exit")
    add_proto_arg(p)


DESCRIPTION = """\
Explain what is wrong with a net or solver prototxt, where, and how to fix it: syntax
(C2T0xx), schema (C2T1xx), graph (C2T2xx), layer (C2T3xx), weights (C2T4xx), solver
(C2T5xx) and portability (C2T6xx) findings, each as path:line:col: severity[CODE] message
with a help line. Every dialect is read (V0, V1, V2, a mix); the linter does not stop at
the first problem. `--explain CODE` says what a code means.

Exit codes: 0 no findings (info notes do not count); 1 findings; 2 usage or I/O error (a
missing file, a binary file such as a .caffemodel)."""

EXAMPLES = """\
examples:
  caffe2torch lint train_val.prototxt solver.prototxt
  caffe2torch lint old_v1.prototxt --diff          # what --fix would change
  caffe2torch lint old_v1.prototxt --fix           # rewrite; the original -> FILE.orig
  caffe2torch lint siamese.prototxt --check-data --select metric
  caffe2torch lint deploy.prototxt --weights w.caffemodel --format concise
  caffe2torch lint --explain C2T320"""


def _codes(values: list[str]) -> list[str]:
    return [c.strip() for v in values for c in v.split(",") if c.strip()]


def run(args: argparse.Namespace) -> int:
    if args.explain:
        text = explain(args.explain)
        if text is None:
            print(f"caffe2torch lint: error: unknown code {args.explain!r} (codes: "
                  f"{CODES and min(CODES)}..{max(CODES)})", file=sys.stderr)
            return common.USAGE
        print(text, end="")
        return common.OK
    if not args.files:
        print("caffe2torch lint: error: give at least one FILE", file=sys.stderr)
        return common.USAGE
    # the reader and the rules (numpy, the layer registry) load only when a file is linted
    from caffe2torch.io.text import read_text
    from caffe2torch.lint.engine import lint_text

    opts = Options(select=_codes(args.select), ignore=_codes(args.ignore),
                   check_data=args.check_data, weights=args.weights, proto=args.proto)
    found: list[Diagnostic] = []
    sources: dict[str | None, str] = {}
    io_error = False
    for path in args.files:
        try:
            text = read_text(path)
            diags = lint_text(text, path, opts)
        except CaffeError as e:
            common.report(e)
            io_error = True
            continue
        if args.diff:
            _print_diff(path, text, diags)
        elif args.fix:
            text, diags = _fix(path, text, diags, opts)
        sources[path] = text
        found.extend(diags)
    sys.stdout.write(render(args.format, found, sources))
    if args.format in ("concise", "full"):
        counted = [d for d in found if d.severity != "info"]
        if counted:
            n_err = sum(d.severity == "error" for d in counted)
            common.note(f"{len(counted)} finding(s): {n_err} error(s), "
                        f"{len(counted) - n_err} warning(s)")
    if io_error:
        return common.USAGE
    return common.FAILED if any(d.severity != "info" for d in found) else common.OK


def _fix(path: str, text: str, diags: list[Diagnostic], opts: Options,
         ) -> tuple[str, list[Diagnostic]]:
    """Apply the fixes; keep the result only if it leaves fewer errors than before."""
    from caffe2torch.lint.engine import lint_text
    from caffe2torch.lint.fix import apply_edits, fix_edits

    edits = fix_edits(diags)
    if not edits:
        return text, diags
    new, n = apply_edits(text, edits)
    after = lint_text(new, path, opts)
    errors = lambda ds: sum(d.severity == "error" for d in ds)  # noqa: E731
    if errors(after) > errors(diags):
        common.note(f"{path}: fixes not applied (they would leave more errors)")
        return text, diags
    import shutil  # only --fix writes

    backup = path + ".orig"
    try:
        if not os.path.exists(backup):  # an older backup holds the older original: keep it
            shutil.copy2(path, backup)
        with open(path, "w", encoding="utf-8", newline="\n") as f:
            f.write(new)
    except OSError as e:
        common.note(f"{path}: cannot write the fixed file: {e.strerror or e}")
        return text, diags
    common.note(f"{path}: applied {n} edit(s); the original is in {backup}")
    return new, after


def _print_diff(path: str, text: str, diags: list[Diagnostic]) -> None:
    """The unified diff --fix would apply (to stdout, before the findings)."""
    import difflib

    from caffe2torch.lint.fix import apply_edits, fix_edits

    edits = fix_edits(diags)
    if not edits:
        common.note(f"{path}: nothing --fix can change")
        return
    new, _ = apply_edits(text, edits)
    sys.stdout.writelines(difflib.unified_diff(
        text.splitlines(keepends=True), new.splitlines(keepends=True),
        fromfile=path, tofile=f"{path} (fixed)"))
