"""``caffe2torch export MODEL [--weights W] -o model.onnx [--opset N] [--batch dynamic|N]
[--output BLOB ...] [--branch INPUT] [--keep-losses] [--verify]``: the deploy view of a net
as ONNX (TEST phase by default; data layers become graph inputs; loss and Accuracy layers
are left out unless --keep-losses). ``--branch data`` exports the tower that starts at blob
``data`` (one branch of a Siamese net, shared weights once). ``--verify`` runs onnxruntime
on random inputs and prints the largest difference from PyTorch per output. In the file,
weights are named ``<layer>.<blob>`` (``conv1.weight``, ``bn1.variance``; a shared param
once, under its owner's name), nodes carry the Caffe layer names, inputs and outputs the
blob names.
"""

from __future__ import annotations

import argparse
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
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_model_args(p)
    p.add_argument("-o", "--out", required=True, metavar="FILE", help="the .onnx file to write")
    p.add_argument("--opset", type=int, default=None, help="ONNX opset (default 17)")
    p.add_argument("--batch", default="dynamic",
                   help="'dynamic' (default: a symbolic batch axis) or a fixed batch size")
    p.add_argument("--output", nargs="+", action="extend", default=[], metavar="BLOB",
                   help="blobs to output (default: the deploy outputs)")
    p.add_argument("--branch", action="append", default=[], metavar="INPUT",
                   help="start from this blob: one tower of a Siamese net")
    p.add_argument("--keep-losses", action="store_true",
                   help="keep loss and Accuracy layers (their label inputs too)")
    p.add_argument("--verify", action="store_true",
                   help="compare onnxruntime with PyTorch on random inputs")
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


def run(args: argparse.Namespace) -> int:
    from caffe2torch.export.onnx import DEFAULT_OPSET, export_onnx

    try:
        batch = _batch(args.batch)
    except UsageError as err:
        common.report(err)
        return common.USAGE
    net = load_model(args)
    report = export_onnx(
        net, args.out, opset=args.opset or DEFAULT_OPSET, batch=batch,
        outputs=args.output or None, branch=args.branch or None,
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
