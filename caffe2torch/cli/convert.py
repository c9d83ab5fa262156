"""``caffe2torch convert``: a net as a standalone PyTorch source file plus its weights."""

from __future__ import annotations

import argparse

from caffe2torch.cli import common
from caffe2torch.cli.export import add_outputs_args
from caffe2torch.cli.netargs import add_model_args, load_model


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_model_args(p)
    p.add_argument("-o", "--out", required=True, metavar="FILE", help="the .py file to write")
    add_outputs_args(p)
    p.add_argument("--class-name", metavar="NAME", help="name of the nn.Module class "
                   "(default: from the net's name)")


DESCRIPTION = """\
Write the deploy view of a net (TEST phase by default) as one readable PyTorch file that
needs only torch to run, and its weights beside it: net.pt (a state_dict) and, when the
safetensors package is installed, net.safetensors. Loss and Accuracy layers are left out
unless --keep-losses.

Exit codes: 0 written; 1 the net cannot be built or written as Python; 2 usage or I/O
error.

The old spelling --output BLOB still works (deprecated): use --outputs BLOB; -o/--out
names the file."""

EXAMPLES = """\
examples:
  caffe2torch convert deploy.prototxt --weights w.caffemodel -o net.py
  caffe2torch convert siamese.prototxt -w w.caffemodel -o tower.py --branch data
  caffe2torch convert deploy.prototxt -o feats.py --outputs fc7 --class-name AlexNetFeatures"""


def run(args: argparse.Namespace) -> int:
    from caffe2torch.export.standalone import convert_net

    net = load_model(args)
    report = convert_net(
        net, args.out, outputs=args.outputs or None, branch=args.branch or None,
        class_name=args.class_name, keep_losses=args.keep_losses,
    )
    print(f"wrote {report.path} (class {report.class_name}; inputs {', '.join(report.inputs)}; "
          f"outputs {', '.join(report.outputs)})")
    for path in report.weight_files:
        print(f"wrote {path}")
    if report.dropped:
        common.note(f"left out (not in the deploy view): {', '.join(report.dropped)}")
    return common.OK
