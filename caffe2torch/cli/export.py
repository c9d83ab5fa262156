"""``caffe2torch export``: a net's deploy view as an ONNX file, checked with onnxruntime on
request."""

from __future__ import annotations

import argparse
import importlib.util
import sys

from caffe2torch.cli import common
from caffe2torch.cli.netargs import UsageError, add_model_args, load_model

# --verify fails when an output differs from PyTorch by more than this, relative to the
# output's largest magnitude (float32 ops in another order)
VERIFY_RTOL = 1e-4


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export",
        help="export a net's deploy view to ONNX (checked with onnxruntime on --verify)",
        description=DESCRIPTION,
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_model_args(p)
    p.add_argument("-o", "--out", required=True, metavar="FILE", help="the .onnx file to write")
    p.add_argument("--opset", type=int, default=None, metavar="N",
                   help="ONNX opset version (default 17)")
    p.add_argument("--batch", default="dynamic", metavar="dynamic|N",
                   help="'dynamic' (default: the batch axis is symbolic) or a fixed batch size")
    add_outputs_args(p)
    p.add_argument("--verify", action="store_true",
                   help="run the file with onnxruntime on random inputs and print the largest "
                   "difference from PyTorch per output (exit 1 when one is too large)")
    p.set_defaults(run=run)


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
become graph inputs, loss and Accuracy layers are left out unless --keep-losses. Weights
are named <layer>.<blob> (conv1.weight, bn1.variance; a shared param once, under its
owner's name), nodes carry the Caffe layer names, inputs and outputs the blob names.

Exit codes: 0 written (and verified); 1 the net cannot be built or exported, or --verify
found a difference; 2 usage or I/O error.

The old spelling --output BLOB still works (deprecated): use --outputs BLOB; -o/--out
names the file."""

EXAMPLES = """\
examples:
  caffe2torch export deploy.prototxt --weights bvlc_alexnet.caffemodel -o alexnet.onnx
  caffe2torch export deploy.prototxt -w w.caffemodel -o m.onnx --batch 1 --verify
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


def run(args: argparse.Namespace) -> int:
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
    net = load_model(args)
    report = export_onnx(
        net, args.out, opset=args.opset or DEFAULT_OPSET, batch=batch,
        outputs=args.outputs or None, branch=args.branch or None,
        keep_losses=args.keep_losses, verify=args.verify,
    )
    print(f"wrote {report.path} (opset {report.opset}): inputs {', '.join(report.inputs)}; "
          f"outputs {', '.join(report.outputs)}")
    if report.dropped:
        common.note(f"left out (not in the deploy view): {', '.join(report.dropped)}")
    if report.max_diff is None:
        return common.OK
    bad = []
    for name, diff in report.max_diff.items():
        print(f"  verify {name}: max |onnxruntime - torch| = {diff:.3g}")
        if not diff <= report.scale.get(name, 1.0) * VERIFY_RTOL + 1e-6:
            bad.append(name)
    if bad:
        print(f"verify FAILED for {', '.join(bad)}", file=sys.stderr)
        return common.FAILED
    print("verify ok")
    return common.OK
