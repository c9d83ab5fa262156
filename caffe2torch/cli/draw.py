"""``caffe2torch draw MODEL -o net.svg|png|pdf|dot [--phase TRAIN|TEST] [--level N]
[--stage S] [--rankdir LR|TB|BT|RL]``: the net as a graph of layers (type, key settings)
and blobs (shape), for one NetState, filtered as the builder filters it. DOT is written
directly; svg/png/pdf need Graphviz's ``dot`` (without it the .dot file is still written
and the command says so).
"""

from __future__ import annotations

import argparse

from caffe2torch.cli import common
from caffe2torch.cli.netargs import add_model_args, input_shapes
from caffe2torch.errors import CaffeError


def add_parser(sub: argparse._SubParsersAction) -> None:
    from caffe2torch.export.draw import RANKDIRS

    p = sub.add_parser(
        "draw",
        help="draw a net (Graphviz: dot, svg, png, pdf)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_model_args(p, weights=False)
    p.add_argument("-o", "--out", required=True, metavar="FILE",
                   help="where to draw (.dot, .svg, .png or .pdf)")
    p.add_argument("--rankdir", type=str.upper, choices=RANKDIRS, default="LR",
                   help="graph direction (default LR, as Caffe's draw_net.py)")
    p.add_argument("--no-shapes", action="store_true", help="do not build the net for shapes")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from caffe2torch.export.draw import draw_net, output_format, write_drawing
    from caffe2torch.io import read_net
    from caffe2torch.ir import NetState

    try:
        output_format(args.out)  # refuse an unknown extension before any work
    except CaffeError as err:
        return common.report(err) and common.USAGE
    net_param = read_net(args.model, args.proto)
    state = NetState.of(args.phase, args.level, args.stage)
    drawing = draw_net(
        net_param, state, args.rankdir, input_shapes=input_shapes(args.input_shape),
        shapes=not args.no_shapes,
    )
    if drawing.note and not args.no_shapes:
        common.note(f"blob shapes not shown: {drawing.note}")
    for path in write_drawing(drawing, args.out):
        print(f"wrote {path} ({drawing.layers} layers, {state.phase} phase)")
    return common.OK
