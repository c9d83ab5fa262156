"""Caffemodel load into a built net: AlexNet- (233 MB) and VGG16-shaped (528 MB) files of
random float32 weights, read and copied into the net's parameters (net.copy_from), plus
the whole load_net(prototxt, weights=...) for reference."""

from __future__ import annotations

import os
import re
import tempfile

import caffe2torch as c2t
from bench.bench_caffemodel_load import NETS, make_model
from bench.common import Report, median_time, min_median_time

GOAL_GBS = 1.0


def _conv(name: str, bottom: str, n: int, k: int, s: int = 1, p: int = 0, g: int = 1) -> str:
    return (f'layer {{ name: "{name}" type: "Convolution" bottom: "{bottom}" top: "{name}" '
            f"convolution_param {{ num_output: {n} kernel_size: {k} stride: {s} pad: {p} "
            f"group: {g} }} }}\n"
            f'layer {{ name: "relu_{name}" type: "ReLU" bottom: "{name}" top: "{name}" }}\n')


def _pool(name: str, bottom: str, k: int, s: int) -> str:
    return (f'layer {{ name: "{name}" type: "Pooling" bottom: "{bottom}" top: "{name}" '
            f"pooling_param {{ pool: MAX kernel_size: {k} stride: {s} }} }}\n")


def _fc(name: str, bottom: str, n: int) -> str:
    return (f'layer {{ name: "{name}" type: "InnerProduct" bottom: "{bottom}" top: "{name}" '
            f"inner_product_param {{ num_output: {n} }} }}\n")


def _input(size: int) -> str:
    return (f'layer {{ name: "data" type: "Input" top: "data" input_param {{ shape {{ dim: 1 '
            f"dim: 3 dim: {size} dim: {size} }} }} }}\n")


def alexnet_prototxt() -> str:
    return (_input(227) + _conv("conv1", "data", 96, 11, 4) + _pool("pool1", "conv1", 3, 2)
            + _conv("conv2", "pool1", 256, 5, p=2, g=2) + _pool("pool2", "conv2", 3, 2)
            + _conv("conv3", "pool2", 384, 3, p=1) + _conv("conv4", "conv3", 384, 3, p=1, g=2)
            + _conv("conv5", "conv4", 256, 3, p=1, g=2) + _pool("pool5", "conv5", 3, 2)
            + _fc("fc6", "pool5", 4096) + _fc("fc7", "fc6", 4096) + _fc("fc8", "fc7", 1000))


def vgg16_prototxt() -> str:
    text = _input(224)
    bottom = "data"
    for block, (n, c) in enumerate([(2, 64), (2, 128), (3, 256), (3, 512), (3, 512)], 1):
        for i in range(1, n + 1):
            name = f"conv{block}_{i}"
            text += _conv(name, bottom, c, 3, p=1)
            bottom = name
        text += _pool(f"pool{block}", bottom, 2, 2)
        bottom = f"pool{block}"
    return text + _fc("fc6", bottom, 4096) + _fc("fc7", "fc6", 4096) + _fc("fc8", "fc7", 1000)


PROTOS = {"alexnet": alexnet_prototxt, "vgg16": vgg16_prototxt}


def with_fillers(text: str) -> str:
    """The same net as a training file declares it: gaussian weights, constant biases (the
    fillers a load with weights must not spend time on)."""
    return re.sub(r"(num_output: \d+)", r'\1 weight_filler { type: "gaussian" std: 0.01 } '
                  r'bias_filler { type: "constant" value: 0.1 }', text)


def _one(report: Report, name: str, spec: list, tmp: str, repeat: int) -> None:
    model = os.path.join(tmp, f"{name}.caffemodel")
    proto = os.path.join(tmp, f"{name}.prototxt")
    make_model(model, spec)
    with open(proto, "w") as f:
        f.write(f'name: "{name}"\n' + PROTOS[name]())
    size = os.path.getsize(model)
    net = c2t.load_net(proto)
    rep = net.copy_from(model)
    assert not rep.missing, rep
    t, med = min_median_time(lambda: net.copy_from(model), repeat)
    gbs = size / t / 1e9
    goal = f">= {GOAL_GBS} GB/s" + (" & < 0.25 s" if name == "alexnet" else "")
    ok = gbs >= GOAL_GBS and (name != "alexnet" or t < 0.25)
    report.add("caffemodel load", f"{name} {size / 1e6:.0f} MB net.copy_from",
               f"best {t:.3f} s = {gbs:.2f} GB/s (median {med:.3f} s)", goal, ok)
    t_full = median_time(lambda: c2t.load_net(proto, weights=model), max(1, repeat // 2))
    report.add("caffemodel load", f"{name} load_net(..., weights=) (incl. build)",
               f"{t_full:.3f} s = {size / t_full / 1e9:.2f} GB/s", "", None)
    train = os.path.join(tmp, f"{name}_train.prototxt")
    with open(train, "w") as f:
        f.write(f'name: "{name}"\n' + with_fillers(PROTOS[name]()))
    t_train = median_time(lambda: c2t.load_net(train, weights=model, phase="TRAIN"),
                          max(1, repeat // 2))
    gbs_train = size / t_train / 1e9
    report.add("caffemodel load", f"{name} training net (gaussian fillers) load_net(weights=)",
               f"{t_train:.3f} s = {gbs_train:.2f} GB/s", f">= {GOAL_GBS} GB/s",
               gbs_train >= GOAL_GBS)
    os.remove(model)


def run(report: Report, quick: bool) -> None:
    repeat = 3 if quick else 7
    with tempfile.TemporaryDirectory() as tmp:
        for name, spec in NETS.items():
            _one(report, name, spec, tmp, repeat)
