"""``caffe2torch convert MODEL [--weights W] -o net.py [--output BLOB ...] [--branch INPUT]
[--class-name NAME] [--keep-losses]``: the deploy view of a net as a standalone, readable
PyTorch file (needs only torch to run) plus its weights beside it: ``net.pt`` (state_dict) and, when
the safetensors package is installed, ``net.safetensors``.
"""

from __future__ import annotations

import argparse

from caffe2torch.cli import common
from caffe2torch.cli.netargs import add_model_args, load_model


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "convert",
        help="write a net as a standalone PyTorch .py file plus its weights",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_model_args(p)
    p.add_argument("-o", "--out", required=True, metavar="FILE", help="the .py file to write")
    p.add_argument("--output", nargs="+", action="extend", default=[], metavar="BLOB",
                   help="blobs to return (default: the deploy outputs)")
    p.add_argument("--branch", action="append", default=[], metavar="INPUT",
                   help="start from this blob: one tower of a Siamese net")
    p.add_argument("--keep-losses", action="store_true",
                   help="keep loss and Accuracy layers (their label inputs too)")
    p.add_argument("--class-name", metavar="NAME", help="the module class (default: from the "
                   "net's name)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from caffe2torch.export.standalone import convert_net

    net = load_model(args)
    report = convert_net(
        net, args.out, outputs=args.output or None, branch=args.branch or None,
        class_name=args.class_name, keep_losses=args.keep_losses,
    )
    print(f"wrote {report.path} (class {report.class_name}; inputs {', '.join(report.inputs)}; "
          f"outputs {', '.join(report.outputs)})")
    for path in report.weight_files:
        print(f"wrote {path}")
    if report.dropped:
        common.note(f"left out (not in the deploy view): {', '.join(report.dropped)}")
    return common.OK
