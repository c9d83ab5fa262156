"""``caffe2torch draw``: a net as a graph of layers and blobs, for one NetState."""

from __future__ import annotations

import argparse

from caffe2torch.cli import common
from caffe2torch.cli.netargs import (
    add_input_shape_arg,
    add_netstate_args,
    add_proto_arg,
    add_python_layers_arg,
    add_share_arg,
    build_options,
    check_shape_names,
    input_shapes,
    share_option,
)
from caffe2torch.errors import CaffeError, UsageError

DESCRIPTION = """\
Draw a net as a graph of layers (name, type, key settings) and blobs (name, shape) for one
NetState, the layers filtered as the builder filters them (stages and levels count, which
Caffe's draw_net.py ignores). The file's extension picks the format:

  .svg  drawn without any other program (a built-in layered layout), or by Graphviz's
        `dot` when it is installed (--layout picks)
  .dot  the Graphviz source, for `dot -Tpng net.dot -o net.png`
  .png, .pdf  need Graphviz's `dot` program (apt-get install graphviz, brew install
        graphviz); without it the .dot file is written beside and the command says so

Blob shapes come from building the net; data tops whose shape comes from the data need
--input-shape (or --no-shapes), and a net with Python layers needs --allow-python-layers
(their modules are imported and set up to give their tops' shapes).

Exit codes: 0 drawn; 1 the drawing failed (no Graphviz for .png/.pdf); 2 usage or I/O
error."""

EXAMPLES = """\
examples:
  caffe2torch draw deploy.prototxt -o net.svg
  caffe2torch draw train_val.prototxt -o train.svg --phase TRAIN --rankdir TB
  caffe2torch draw deploy.prototxt -o net.png          # needs Graphviz"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    from caffe2torch.export.draw import RANKDIRS
    p.add_argument("model", metavar="MODEL", help="net prototxt (any Caffe version)")
    add_netstate_args(p, "TEST")
    add_input_shape_arg(p)
    add_share_arg(p)
    add_proto_arg(p)
    add_python_layers_arg(p)
    p.add_argument("-o", "--out", required=True, metavar="FILE",
                   help="where to draw: .svg, .dot, .png or .pdf")
    p.add_argument("--rankdir", type=str.upper, choices=RANKDIRS, default="LR",
                   help="graph direction: LR left to right (default, as Caffe's "
                   "draw_net.py), TB top to bottom, BT, RL")
    p.add_argument("--layout", choices=("auto", "builtin", "graphviz"), default="auto",
                   help="who lays out an .svg: 'auto' (default: Graphviz when installed, "
                   "else built in), 'builtin' or 'graphviz'")
    p.add_argument("--no-shapes", action="store_true",
                   help="do not build the net to show blob shapes")


def run(args: argparse.Namespace) -> int:
    from caffe2torch.export.draw import draw_net, output_format, write_drawing
    from caffe2torch.io import read_net_with_positions
    from caffe2torch.ir import NetState

    try:
        output_format(args.out)  # refuse an unknown extension before any work
    except CaffeError as err:
        raise UsageError(err.message, hint=err.hint) from None
    shapes = input_shapes(args.input_shape)
    # the source map carries the fields only the fork (or a plug-in) has to the builders
    net_param, source_map = read_net_with_positions(args.model, args.proto)
    check_shape_names(shapes, net_param, args.model)
    state = NetState.of(args.phase, args.level, args.stage)
    drawing = draw_net(
        net_param, state, args.rankdir, input_shapes=shapes, shapes=not args.no_shapes,
        share=share_option(args), options=build_options(args), source_map=source_map,
    )
    if drawing.note and not args.no_shapes:
        common.note(f"blob shapes not shown: {drawing.note}"
                    + (f"\n  help: {drawing.hint}" if drawing.hint else ""))
    for path in write_drawing(drawing, args.out, layout=args.layout):
        print(f"wrote {path} ({drawing.layers} layers, {state.phase} phase)")
    return common.OK
