"""runtime.glog (Caffe's log lines), runtime.devices (the CPU path; GPU choice with CUDA
faked is in tests/solver/test_devices.py) and runtime.timing (`caffe time`'s per-layer
table)."""

from __future__ import annotations

import io
import math
import re
import time

import torch

from caffe2torch.graph import build_net
from caffe2torch.io import read_net_text
from caffe2torch.proto import caffe_pb2
from caffe2torch.runtime.devices import default_workers, resolve_device
from caffe2torch.runtime.glog import GlogWriter, fmt
from caffe2torch.runtime.timing import LayerTimer


def test_glog_line_layout_and_numbers() -> None:
    out = io.StringIO()
    log = GlogWriter(out)
    log.info(f"Iteration 100, loss = {fmt(0.09925650123)}", "solver.cpp:228")
    log.warning("careful")
    first, second = out.getvalue().splitlines()
    # what Caffe's tools/extra/parse_log.py matches
    assert re.fullmatch(r"I\d{4} \d\d:\d\d:\d\d\.\d{6} +\d+ solver\.cpp:228\] "
                        r"Iteration 100, loss = 0\.0992565", first)
    assert second.startswith("W") and second.endswith("solver.cpp:0] careful")
    assert fmt(1e-5) == "1e-05" and fmt(3.0) == "3"
    GlogWriter(None).info("silent")  # no stream: nothing, no error


def test_cpu_unless_asked() -> None:
    log = GlogWriter(None)
    assert resolve_device(caffe_pb2.SolverParameter(), None, log) == torch.device("cpu")
    assert resolve_device(caffe_pb2.SolverParameter(), "cpu", log) == torch.device("cpu")
    assert default_workers(torch.device("cpu")) == 0


def test_layer_timer_times_each_layer_forward_and_backward() -> None:
    net = build_net(read_net_text(
        'input: "x" input_shape { dim: 4 dim: 3 }\n'
        'layer { name: "ip" type: "InnerProduct" bottom: "x" top: "ip" '
        '        inner_product_param { num_output: 2 weight_filler { type: "xavier" } } }\n'
        'layer { name: "relu" type: "ReLU" bottom: "ip" top: "ip" }\n'), "TRAIN")
    timer = LayerTimer(net, lambda: None)
    assert timer.names == ["input", "ip", "relu"]
    out = net(x=torch.randn(4, 3))["ip"]
    timer.start_backward()
    started = time.perf_counter()
    out.sum().backward()
    timer.end_backward(started, time.perf_counter())
    assert all(timer.forward[name] > 0 for name in ("ip", "relu"))
    assert all(math.isfinite(v) and v >= 0 for v in timer.backward.values())
    assert timer.backward["relu"] > 0


def test_layer_backward_times_do_not_overlap_across_branches() -> None:
    # Two towers on inputs that need no gradient: each layer is charged only for the
    # autograd nodes its forward made, so the per-layer times add up to at most the pass
    # (a layer is not charged while the other tower's nodes run).
    tower = ('layer {{ name: "conv{s}" type: "Convolution" bottom: "x{s}" top: "c{s}" '
             '  convolution_param {{ num_output: 8 kernel_size: 3 '
             '    weight_filler {{ type: "xavier" }} }} }}\n'
             'layer {{ name: "relu{s}" type: "ReLU" bottom: "c{s}" top: "c{s}" }}\n')
    net = build_net(read_net_text(
        'input: "xa" input_shape { dim: 2 dim: 3 dim: 16 dim: 16 }\n'
        'input: "xb" input_shape { dim: 2 dim: 3 dim: 16 dim: 16 }\n'
        + tower.format(s="a") + tower.format(s="b")
        + 'layer { name: "cat" type: "Concat" bottom: "ca" bottom: "cb" top: "cat" }\n'),
        "TRAIN")
    timer = LayerTimer(net, lambda: None)
    total = 0.0
    for _ in range(3):
        out = net(xa=torch.randn(2, 3, 16, 16), xb=torch.randn(2, 3, 16, 16))["cat"]
        timer.start_backward()
        started = time.perf_counter()
        out.square().sum().backward()
        ended = time.perf_counter()
        timer.end_backward(started, ended)
        total += ended - started
    backward = {n: timer.backward[n] for n in ("conva", "convb", "relua", "relub", "cat")}
    assert all(v > 0 for v in backward.values()), backward
    assert sum(backward.values()) <= total
