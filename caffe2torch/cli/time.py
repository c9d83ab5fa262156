"""``caffe2torch time``: Caffe's ``caffe time``, per-layer forward and backward times."""

from __future__ import annotations

import argparse
import sys
import time

from caffe2torch.cli import common
from caffe2torch.cli.netargs import (
    add_input_shape_arg,
    add_netstate_args,
    add_proto_arg,
    add_python_layers_arg,
    build_options,
    check_shape_names,
    input_shapes,
)
from caffe2torch.errors import DataError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, metavar="M", help="net prototxt")
    add_proto_arg(p)
    p.add_argument("--compile", action="store_true",
                   help="time the net compiled through torch.compile (inductor): compiled at the "
                   "first pass, which takes a while on a CPU (not timed); no per-layer times")
    p.add_argument("--channels-last", action="store_true",
                   help="time the net with 4-D params and blobs laid out NHWC (graph.layout)")
    p.add_argument("--iterations", type=int, default=50, metavar="N",
                   help="forward-backward passes to average (default 50)")
    p.add_argument("--gpu", metavar="ID", help="GPU id (default: CPU)")
    add_netstate_args(p, "TRAIN")
    add_input_shape_arg(p)
    add_python_layers_arg(p)


DESCRIPTION = """\
Time a net as Caffe's `caffe time` does: the average forward and backward time of each
layer and of the whole net over -iterations passes (TRAIN phase by default). The net reads
its data layers when their sources are reachable; otherwise every input is zeros of the
shape the prototxt gives (or --input-shape). A net without a loss is timed backward from
the sum of its outputs. A layer's backward time is the time spent computing the gradients
of the operations its own forward ran, as Caffe times each layer's Backward; waiting while
other branches of the net run backward, and adding up parameter gradients, count for no
layer. Caffe's one-dash flags work too.

Exit codes: 0 timed; 1 the net cannot be built or run; 2 usage or I/O error."""

EXAMPLES = """\
examples:
  caffe2torch time -model train_val.prototxt -iterations 10
  caffe2torch time -model deploy.prototxt --phase TEST --input-shape data=10,3,227,227 -gpu 0"""


def run(args: argparse.Namespace) -> int:
    import torch

    from caffe2torch.graph import build_net
    from caffe2torch.graph.fed import build_fed_net, stream_of
    from caffe2torch.io import read_net_with_positions
    from caffe2torch.ir.netstate import NetState
    from caffe2torch.layers.grad_buffers import GradBuffers
    from caffe2torch.proto import caffe_pb2
    from caffe2torch.runtime.devices import device_flag, resolve_device
    from caffe2torch.runtime.feeding import BatchStream
    from caffe2torch.runtime.glog import GlogWriter, fmt
    from caffe2torch.runtime.heap import keep_freed_memory
    from caffe2torch.runtime.timing import LayerTimer

    if args.iterations < 1:
        print("caffe2torch time: error: -iterations must be >= 1", file=sys.stderr)
        return common.USAGE
    log = GlogWriter(sys.stderr)
    keep_freed_memory()  # every pass reuses the last one's memory, as Caffe's blobs do
    try:
        requested = device_flag(args.gpu)
    except ValueError as e:
        print(f"caffe2torch time: error: {e}", file=sys.stderr)
        return common.USAGE
    device = resolve_device(caffe_pb2.SolverParameter(), requested, log)
    if device.type == "cpu":
        log.info("Use CPU.", "caffe.cpp:345")
    stages = [s.strip() for v in args.stage for s in v.split(",") if s.strip()]
    state = NetState.of(args.phase, args.level, stages)
    net_param, source_map = read_net_with_positions(args.model, args.proto)
    shapes = input_shapes(args.input_shape)
    check_shape_names(shapes, net_param, args.model)
    try:
        net = build_fed_net(net_param, state, source_map=source_map, device=device,
                            input_shapes=shapes, options=build_options(args))
    except DataError as e:
        common.note(f"caffe2torch time: note: the data cannot be read ({e.message}); "
                    "timing with zero inputs")
        net = build_net(net_param, state, input_shapes=shapes, source_map=source_map,
                        options=build_options(args))
        net.to(device)
        net.batch_stream = BatchStream(net, None, None, device)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    if args.channels_last:
        from caffe2torch.graph.layout import use_channels_last

        use_channels_last(net)
    if args.compile:  # the first (untimed) pass compiles forward and backward
        from caffe2torch.graph.compile import compile_net

        compile_net(net)

    # weight diffs kept across passes and never cleared: Caffe's `time` accumulates them
    buffers = GradBuffers(net.parameters())

    def forward_backward(timer: LayerTimer | None) -> tuple[float, float, float]:
        batch = stream_of(net)()
        with buffers.active():
            t0 = time.perf_counter()
            out = net(batch)
            loss = net.loss(out) if net.loss_weights else sum(
                (o.float().sum() for o in out.values() if o.is_floating_point()),
                torch.zeros((), device=device))
            sync()
            t1 = time.perf_counter()
            if timer is not None:
                timer.start_backward()
            if isinstance(loss, torch.Tensor) and loss.requires_grad:
                loss.backward()
            sync()
        t2 = time.perf_counter()
        if timer is not None:
            timer.end_backward(t1, t2)
        buffers.release_unkept(net.parameters())
        return float(loss.detach()), t1 - t0, t2 - t1

    log.info("Performing Forward", "caffe.cpp:366")
    initial, _, _ = forward_backward(None)
    log.info(f"Initial loss: {fmt(initial)}", "caffe.cpp:371")
    log.info("Performing Backward", "caffe.cpp:372")
    timer = None if args.compile else LayerTimer(net, sync)  # hooks: not in compiled graphs
    log.info("*** Benchmark begins ***", "caffe.cpp:380")
    log.info(f"Testing for {args.iterations} iterations.", "caffe.cpp:381")
    total_fwd = total_bwd = 0.0
    begin = time.perf_counter()
    for j in range(args.iterations):
        _, fwd, bwd = forward_backward(timer)
        total_fwd += fwd
        total_bwd += bwd
        log.info(f"Iteration: {j + 1} forward-backward time: {fmt((fwd + bwd) * 1e3)} ms.",
                 "caffe.cpp:409")
    total = time.perf_counter() - begin
    n = args.iterations
    log.info("Average time per layer: ", "caffe.cpp:412")
    if timer is not None:
        for name in timer.names:
            log.info(f"{name:>10}\tforward: {fmt(timer.forward[name] * 1e3 / n)} ms.",
                     "caffe.cpp:415")
            log.info(f"{name:>10}\tbackward: {fmt(timer.backward[name] * 1e3 / n)} ms.",
                     "caffe.cpp:418")
    log.info(f"Average Forward pass: {fmt(total_fwd * 1e3 / n)} ms.", "caffe.cpp:423")
    log.info(f"Average Backward pass: {fmt(total_bwd * 1e3 / n)} ms.", "caffe.cpp:425")
    log.info(f"Average Forward-Backward: {fmt(total * 1e3 / n)} ms.", "caffe.cpp:427")
    log.info(f"Total Time: {fmt(total * 1e3)} ms.", "caffe.cpp:429")
    log.info("*** Benchmark ends ***", "caffe.cpp:430")
    return common.OK
