"""``caffe2torch test -model M -weights W [-iterations 50] [-gpu ID] [-phase P] [-level N]
[-stage S]``: Caffe's ``caffe test``: score a net (TEST phase by default) over
``iterations`` batches drawn by its data layers (paths relative to the working directory).

Caffe's log lines go to stderr (``Batch i, name = v`` per batch, ``Loss: x`` and each output
averaged); the summary also goes to stdout (``Loss: x``, then ``name = value`` per output).
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
import torch

from caffe2torch.cli import common
from caffe2torch.cli.train import device_flag


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("test", help="score a net over N batches (Caffe's `caffe test`)",
                       description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, metavar="M", help="net prototxt")
    p.add_argument("--weights", metavar="W", help="caffemodel(s), comma-separated")
    p.add_argument("--iterations", type=int, default=50, metavar="N",
                   help="batches to score (default 50)")
    p.add_argument("--gpu", metavar="ID", help="GPU id (default: CPU)")
    p.add_argument("--phase", type=str.upper, choices=["TRAIN", "TEST"], default="TEST")
    p.add_argument("--level", type=int, default=0)
    p.add_argument("--stage", action="append", default=[])
    p.add_argument("--quiet", "-q", action="store_true", help="no per-batch log lines")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from caffe2torch.io import read_net_with_positions
    from caffe2torch.ir.netstate import NetState
    from caffe2torch.solver.glog import GlogWriter, fmt
    from caffe2torch.solver.netsetup import build_fed_net
    from caffe2torch.solver.solver import resolve_device

    if args.iterations < 1:
        print("caffe2torch test: error: -iterations must be >= 1", file=sys.stderr)
        return common.USAGE
    log = GlogWriter(None if args.quiet else sys.stderr)
    try:
        requested = device_flag(args.gpu)
    except ValueError as e:
        print(f"caffe2torch test: error: {e}", file=sys.stderr)
        return common.USAGE
    from caffe2torch.proto import caffe_pb2

    device = resolve_device(caffe_pb2.SolverParameter(), requested, log)
    if device.type == "cpu":
        log.info("Use CPU.", "caffe.cpp:271")
    stages = [s.strip() for v in args.stage for s in v.split(",") if s.strip()]
    net_param, source_map = read_net_with_positions(args.model)
    net = build_fed_net(net_param, NetState.of(args.phase, args.level, stages),
                        source_map=source_map, device=device)
    if args.weights:
        for name in (w.strip() for w in args.weights.split(",")):
            if name:
                net.copy_from(name)
    else:
        common.note("caffe2torch test: note: no -weights: scoring the fillers' values")
    log.info(f"Running for {args.iterations} iterations.", "caffe.cpp:283")
    names: list[str] = []
    scores: np.ndarray | None = None
    loss = np.float32(0)
    with torch.no_grad():
        for i in range(args.iterations):
            out = net(net.batch_stream())
            loss = np.float32(loss + np.float32(float(net.loss(out))))
            values, batch_names = [], []
            for name in net.outputs:
                flat = out[name].detach().float().cpu().reshape(-1).numpy()
                for v in flat:
                    log.info(f"Batch {i}, {name} = {fmt(v)}", "caffe.cpp:312")
                values.append(flat)
                batch_names += [name] * flat.size
            row = np.concatenate(values) if values else np.zeros(0, np.float32)
            if scores is None:
                names, scores = batch_names, row.astype(np.float32)
            else:
                scores += row
    loss = np.float32(loss / np.float32(args.iterations))
    log.info(f"Loss: {fmt(loss)}", "caffe.cpp:317")
    print(f"Loss: {fmt(loss)}")
    for name, total in zip(names, scores if scores is not None else []):
        mean = np.float32(total / np.float32(args.iterations))
        weight = net.loss_weights.get(name, 0.0)
        extra = f" (* {fmt(weight)} = {fmt(np.float32(weight) * mean)} loss)" if weight else ""
        log.info(f"{name} = {fmt(mean)}{extra}", "caffe.cpp:330")
        print(f"{name} = {fmt(mean)}{extra}")
    return common.OK
