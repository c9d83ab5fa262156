"""``caffe2torch export``: a net's deploy view as an ONNX file, checked with onnxruntime on
request."""

from __future__ import annotations

import argparse
import importlib.util
import sys
from typing import Any

from caffe2torch.cli import common
from caffe2torch.cli.netargs import (
    UsageError,
    add_model_args,
    build_options,
    check_shape_names,
    input_shapes,
    share_option,
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


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_model_args(p)
    p.add_argument("-o", "--out", required=True, metavar="FILE", help="the .onnx file to write")
    p.add_argument("--opset", type=_opset, default=None, metavar="N",
                   help="ONNX opset, 11 to 21 (default 21, the newest onnxruntime here runs)")
    p.add_argument("--batch", default="dynamic", metavar="dynamic|N",
                   help="'dynamic' (default: the batch axis is symbolic) or a fixed batch size")
    add_outputs_args(p)
    p.add_argument("--verify", action="store_true",
                   help="compare onnxruntime with PyTorch at batch 1 and 3 on data-like inputs, "
                   "print the largest absolute and relative difference per output; exit 1 "
                   "beyond tolerance or when an output is all NaN or inf")
    p.add_argument("--fold-bn", action="store_true",
                   help="fold BatchNorm (and the Scale after it) into the convolution or "
                   "inner product before it: same outputs, fewer nodes")
    p.add_argument("--simplify", action="store_true",
                   help="constant-fold and simplify the graph (onnxsim when installed, else "
                   "onnxruntime's basic graph optimisations)")
    p.add_argument("--half", action="store_true",
                   help="float16 weights and activations (inputs and outputs float16 too)")
    p.add_argument("--trt-nms", action="store_true",
                   help="write each SSD DetectionOutput as one TRT::BatchedNMS_TRT node "
                   "(TensorRT's batched NMS plugin) fed the decoded boxes and the scores; its "
                   "top becomes four outputs TOP_num_detections, TOP_nmsed_boxes, "
                   "TOP_nmsed_scores, TOP_nmsed_classes. The file then runs only in TensorRT "
                   "(onnxruntime has no such op): --verify is skipped")


def add_outputs_args(p: argparse.ArgumentParser) -> None:
    """--outputs, --branch, --keep-losses (export and convert)."""
    p.add_argument("--outputs", nargs="+", action="extend", default=[], metavar="BLOB",
                   help="the blobs the model returns (default: the net's outputs)")
    p.add_argument("--output", nargs="+", dest="outputs", action=common.DeprecatedAlias,
                   new="--outputs BLOB", append=True, help=argparse.SUPPRESS)
    p.add_argument("--branch", action="append", default=[], metavar="BLOB",
                   help="keep only what this input blob feeds: one tower of a Siamese net "
                   "(shared weights once); repeatable")
    p.add_argument("--keep-losses", action="store_true",
                   help="keep loss and Accuracy layers (and their label inputs)")


DESCRIPTION = """\
Write the deploy view of a net as an ONNX model: the TEST phase by default, data layers
become graph inputs, loss and Accuracy layers are left out unless --keep-losses, and
TEST-only layers whose inputs the deploy view does not have are left out with a note.
Weights are named <layer>.<blob> (conv1.weight, bn1.variance; a shared param once, under
its owner's name), nodes carry the Caffe layer names, inputs and outputs the blob names.

The batch axis is symbolic: the file runs at any batch size. A net that runs at one batch
only (a Reshape or Slice that fixes it) is exported with its prototxt's batch, and the
command says so. SSD's PriorBox becomes a constant and DetectionOutput standard ONNX ops
(docs/export.md lists what each layer type becomes); with --trt-nms, DetectionOutput is
one node for TensorRT's BatchedNMS_TRT plugin instead.

--verify warns when the weights are fillers or one constant, or when an output is
constant, and fails when an output differs by more than 1e-4 of its magnitude (2e-2 with
--half) or has no finite value (all NaN or inf) in PyTorch or onnxruntime: NaN agrees
with NaN, so such an output is not verified (give real --weights; fillers or an input
without the net's mean and scale can overflow). It then names the first blob with inf or
NaN and the BatchNorm layers whose statistics are all zero (fillers: each divides by
sqrt(eps), as in Caffe).

Exit codes: 0 written (and verified); 1 the net cannot be built or exported, or --verify
found a difference or an output with no finite value; 2 usage or I/O error.

The old spelling --output BLOB still works (deprecated): use --outputs BLOB; -o/--out
names the file."""

EXAMPLES = """\
examples:
  caffe2torch export deploy.prototxt --weights bvlc_alexnet.caffemodel -o alexnet.onnx
  caffe2torch export deploy.prototxt -w w.caffemodel -o m.onnx --verify
  caffe2torch export deploy.prototxt -w w.caffemodel -o m.onnx --fold-bn --simplify
  caffe2torch export ssd_deploy.prototxt -w ssd.caffemodel -o ssd_trt.onnx --trt-nms
  caffe2torch export siamese.prototxt -w w.caffemodel -o tower.onnx --branch data
  caffe2torch export net.prototxt -o feat.onnx --outputs fc7 --input-shape data=1,3,227,227"""


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
    from caffe2torch.io import read_net

    shapes = input_shapes(args.input_shape)
    if shapes:  # refuse a name the net does not have before building (it would be ignored)
        check_shape_names(shapes, read_net(args.model, args.proto), args.model)
    return load_for_export(
        args.model, weights=args.weights, phase=args.phase, level=args.level,
        stages=args.stage, input_shapes=shapes, share=share_option(args), proto=args.proto,
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
    if args.verify and importlib.util.find_spec("onnxruntime") is None:
        common.report(UsageError("--verify runs the model with onnxruntime, which is not "
                                 "installed", hint="pip install onnxruntime (or "
                                 "caffe2torch[onnxruntime]), or leave out --verify"))
        return common.USAGE
    net, pruned = _load(args)
    for line in pruned:
        common.note(f"note: {line}")
    try:
        report = export_onnx(
            net, args.out, opset=args.opset or DEFAULT_OPSET, batch=batch,
            outputs=args.outputs or None, branch=args.branch or None,
            keep_losses=args.keep_losses, verify=args.verify, fold_bn=args.fold_bn,
            simplify=args.simplify, half=args.half, from_fillers=args.weights is None,
            trt_nms=args.trt_nms,
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
        elif c.nonfinite:
            print(f"  verify {c.name} (batch {c.batch}): not checked, {c.nonfinite}")
        else:
            print(f"  verify {c.name} (batch {c.batch}): max abs {c.max_abs:.3g}, "
                  f"max rel {c.max_rel:.3g} (|torch| up to {c.scale:.3g})")
    if not result.ok:
        unchecked = sorted({c.name for c in result.failures() if c.nonfinite})
        bad = sorted({c.name for c in result.failures()} - set(unchecked))
        if bad:
            print(f"verify FAILED for {', '.join(bad)} (tolerance: {result.rtol:g} x "
                  "max|output|)", file=sys.stderr)
        if unchecked:
            print(f"verify FAILED: no finite value to compare for {', '.join(unchecked)} "
                  "(see the warning above)", file=sys.stderr)
        return common.FAILED
    print(f"verify ok (tolerance {result.rtol:g} x max|output|)")
    return common.OK
