"""``caffe2torch export MODEL [--weights W] -o model.onnx [options]``: the deploy view of a
net as ONNX (TEST phase by default; data layers become graph inputs; loss and Accuracy
layers are left out unless --keep-losses; TEST-only layers whose inputs the deploy view does
not have are left out with a note).

The batch axis is symbolic: the file runs at any batch size. A net that runs at one batch
only (a Reshape or Slice that fixes it) is exported with its prototxt's batch, and the
command says so.

Example:

  caffe2torch export deploy.prototxt --weights w.caffemodel -o model.onnx --verify
  caffe2torch export deploy.prototxt -w w.caffemodel -o model.onnx --fold-bn --simplify

``--verify`` runs onnxruntime and PyTorch at two batch sizes (1 and 3) on data-like inputs
and prints, per output and batch, the largest absolute and relative difference; it warns
when the weights are fillers or one constant, or an output is constant, and exits 1 when an
output differs by more than 1e-4 of its magnitude (2e-2 with --half). ``--branch data``
exports the tower that starts at blob ``data`` (one branch of a Siamese net, shared weights
once). In the file, weights are named ``<layer>.<blob>`` (``conv1.weight``, ``bn1.variance``;
a shared param once, under its owner's name), nodes carry the Caffe layer names, inputs and
outputs the blob names.

Exit codes: 0 written (and verified), 1 the net cannot be exported or the check failed,
2 a bad option or unreadable file.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from caffe2torch.cli import common
from caffe2torch.cli.netargs import (
    UsageError,
    add_model_args,
    build_options,
    input_shapes,
)


def _opset(text: str) -> int:
    from caffe2torch.export.onnx import OPSETS

    try:
        value = int(text)
    except ValueError:
        value = -1
    if value not in OPSETS:
        raise argparse.ArgumentTypeError(
            f"{text!r}: choose an opset from {OPSETS.start} to {OPSETS.stop - 1}")
    return value


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export",
        help="export a net's deploy view to ONNX (checked with onnxruntime on --verify)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_model_args(p)
    p.add_argument("-o", "--out", required=True, metavar="FILE", help="the .onnx file to write")
    p.add_argument("--opset", type=_opset, default=None, metavar="N",
                   help="ONNX opset, 11 to 21 (default 21, the newest onnxruntime here runs)")
    p.add_argument("--batch", default="dynamic",
                   help="'dynamic' (default: a symbolic batch axis) or a fixed batch size")
    p.add_argument("--output", nargs="+", action="extend", default=[], metavar="BLOB",
                   help="blobs to output (default: the deploy outputs)")
    p.add_argument("--branch", action="append", default=[], metavar="INPUT",
                   help="start from this blob: one tower of a Siamese net")
    p.add_argument("--keep-losses", action="store_true",
                   help="keep loss and Accuracy layers (their label inputs too)")
    p.add_argument("--verify", action="store_true",
                   help="compare onnxruntime with PyTorch at batch 1 and 3 on data-like inputs; "
                   "exit 1 beyond tolerance")
    p.add_argument("--fold-bn", action="store_true",
                   help="fold BatchNorm (and the Scale after it) into the convolution or "
                   "inner product before it: same outputs, fewer nodes")
    p.add_argument("--simplify", action="store_true",
                   help="constant-fold and simplify the graph (onnxsim when installed, else "
                   "onnxruntime's basic graph optimisations)")
    p.add_argument("--half", action="store_true",
                   help="float16 weights and activations (inputs and outputs float16 too)")
    p.set_defaults(run=run)


def _batch(text: str) -> int | str:
    if text == "dynamic":
        return text
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value <= 0:
        raise UsageError(f"--batch {text!r}: expected 'dynamic' or a positive integer")
    return value


def _load(args: argparse.Namespace) -> tuple[Any, list[str]]:
    """MODEL as load_model builds it, less the TEST-only or scoring layers whose inputs
    the file does not have (a note each)."""
    from caffe2torch.export.onnx import load_for_export

    return load_for_export(
        args.model, weights=args.weights, phase=args.phase, level=args.level,
        stages=args.stage, input_shapes=input_shapes(args.input_shape),
        **build_options(args),
    )


def run(args: argparse.Namespace) -> int:
    from caffe2torch.errors import CaffeError
    from caffe2torch.export.onnx import DEFAULT_OPSET, export_onnx

    try:
        batch = _batch(args.batch)
    except UsageError as err:
        common.report(err)
        return common.USAGE
    net, pruned = _load(args)
    for line in pruned:
        common.note(f"note: {line}")
    try:
        report = export_onnx(
            net, args.out, opset=args.opset or DEFAULT_OPSET, batch=batch,
            outputs=args.output or None, branch=args.branch or None,
            keep_losses=args.keep_losses, verify=args.verify, fold_bn=args.fold_bn,
            simplify=args.simplify, half=args.half, from_fillers=args.weights is None,
        )
    except CaffeError:
        raise
    except Exception as exc:  # a failure inside torch.onnx or onnx: a finding, not a crash
        text = str(exc).strip().splitlines()
        print(f"error: export failed: {type(exc).__name__}: {text[0] if text else ''}"[:500],
              file=sys.stderr)
        return common.FAILED
    print(f"wrote {report.path} (opset {report.opset}, batch {report.batch}): inputs "
          f"{', '.join(report.inputs)}; outputs {', '.join(report.outputs)}")
    if report.dropped:
        common.note(f"left out (not in the deploy view): {', '.join(report.dropped)}")
    for line in report.notes:
        common.note(f"note: {line}")
    if report.verify is None:
        return common.OK
    for line in report.verify.warnings:
        common.note(f"warning: {line}")
    result = report.verify
    for c in result.checks:
        if c.error:
            print(f"  verify {c.name} (batch {c.batch}): {c.error}")
        else:
            print(f"  verify {c.name} (batch {c.batch}): max abs {c.max_abs:.3g}, "
                  f"max rel {c.max_rel:.3g} (|torch| up to {c.scale:.3g})")
    if not result.ok:
        bad = sorted({c.name for c in result.failures()})
        print(f"verify FAILED for {', '.join(bad)} (tolerance: {result.rtol:g} x max|output|)",
              file=sys.stderr)
        return common.FAILED
    print(f"verify ok (tolerance {result.rtol:g} x max|output|)")
    return common.OK
