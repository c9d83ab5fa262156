"""Caffemodel read/write speed on AlexNet- and VGG16-shaped files (233 MB and 528 MB of
float32 weights, random values), written to a temporary folder.

    python bench/bench_caffemodel_load.py [--repeat 3] [--only alexnet|vgg16]

Prints MB/s (1 MB = 10^6 bytes of file) for each path, best and median of ``--repeat``
runs, plus protobuf's own ParseFromString of the whole file as a reference point.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable

import numpy as np

from caffe2torch.io.binary import (
    read_caffemodel,
    read_caffemodel_arrays,
    write_caffemodel,
    write_caffemodel_arrays,
)
from caffe2torch.proto import caffe_pb2

# (layer name, type, [blob shapes]) in caffemodel blob order.
ALEXNET = [
    ("conv1", "Convolution", [(96, 3, 11, 11), (96,)]),
    ("conv2", "Convolution", [(256, 48, 5, 5), (256,)]),
    ("conv3", "Convolution", [(384, 256, 3, 3), (384,)]),
    ("conv4", "Convolution", [(384, 192, 3, 3), (384,)]),
    ("conv5", "Convolution", [(256, 192, 3, 3), (256,)]),
    ("fc6", "InnerProduct", [(4096, 9216), (4096,)]),
    ("fc7", "InnerProduct", [(4096, 4096), (4096,)]),
    ("fc8", "InnerProduct", [(1000, 4096), (1000,)]),
]


def _vgg16() -> list[tuple[str, str, list[tuple[int, ...]]]]:
    layers = []
    c_in = 3
    for block, (n, c) in enumerate([(2, 64), (2, 128), (3, 256), (3, 512), (3, 512)], 1):
        for i in range(1, n + 1):
            layers.append((f"conv{block}_{i}", "Convolution", [(c, c_in, 3, 3), (c,)]))
            c_in = c
    layers += [
        ("fc6", "InnerProduct", [(4096, 25088), (4096,)]),
        ("fc7", "InnerProduct", [(4096, 4096), (4096,)]),
        ("fc8", "InnerProduct", [(1000, 4096), (1000,)]),
    ]
    return layers


NETS = {"alexnet": ALEXNET, "vgg16": _vgg16()}


def make_model(path: str, spec, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    net = caffe_pb2.NetParameter(name="bench")
    arrays = {}
    prev = "data"
    for name, kind, shapes in spec:
        layer = net.layer.add(name=name, type=kind, bottom=[prev], top=[name])
        layer.param.add(lr_mult=1)
        layer.param.add(lr_mult=2)
        arrays[name] = [rng.standard_normal(s, dtype=np.float32) * 0.01 for s in shapes]
        prev = name
    write_caffemodel_arrays(path, net, arrays)


def timings(fn: Callable[[], object], repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        out.append(time.perf_counter() - t0)
        del result
    return out


def protobuf_parse(path: str) -> caffe_pb2.NetParameter:
    with open(path, "rb") as f:
        data = f.read()
    net = caffe_pb2.NetParameter()
    net.ParseFromString(data)
    return net


def bench_one(name: str, spec, tmp: str, repeat: int) -> None:
    path = os.path.join(tmp, f"{name}.caffemodel")
    make_model(path, spec)
    size = os.path.getsize(path)
    mb = size / 1e6
    print(f"{name}: {mb:.0f} MB ({size / 2**20:.0f} MiB); MB/s best / median of {repeat}")
    net, arrays = read_caffemodel_arrays(path)
    full = read_caffemodel(path)
    out = os.path.join(tmp, "out.caffemodel")
    runs = {
        "read_caffemodel_arrays": lambda: read_caffemodel_arrays(path),
        "read_caffemodel": lambda: read_caffemodel(path),
        "protobuf ParseFromString (reference)": lambda: protobuf_parse(path),
        "write_caffemodel_arrays (fsync)": lambda: write_caffemodel_arrays(out, net, arrays),
        "write_caffemodel (fsync)": lambda: write_caffemodel(out, full),
    }
    for label, fn in runs.items():
        t = sorted(timings(fn, repeat))
        best, median = t[0], t[len(t) // 2]
        print(f"  {label:40s} {best:7.3f} s  {mb / best:7.0f} / {mb / median:7.0f} MB/s")
    os.remove(path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--only", choices=sorted(NETS))
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for name, spec in NETS.items():
            if not args.only or name == args.only:
                bench_one(name, spec, tmp, args.repeat)


if __name__ == "__main__":
    main()
