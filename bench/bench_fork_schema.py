"""Cost of reading files with a fork's caffe.proto (``proto=``), beside our own schema.

    python bench/bench_fork_schema.py [--repeat 5] [--proto FORK.proto]

* compile: load_schema of a caffe.proto with every cache cleared (the compiler run, the
  descriptor pool), and again from the disk cache in a fresh process state;
* caffemodel: an AlexNet-shaped file (233 MB of float32) read with read_caffemodel_arrays,
  with our schema, with a fork schema that uses BVLC's numbers (our own caffe.proto
  compiled at run time: the fast path, nothing to re-key), and with the test fixture
  fork that renumbers layer, blobs and shape (every layer re-keyed, blob payloads copied
  as slices);
* prototxt: a 150-layer net (convolutions and ReLUs, fields every schema here knows) read
  with read_net, ours vs. the fork schemas.

Prints medians and the ratio fork / ours (the issue asks for <= 1.2 and < 1 s to compile).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from caffe2torch.io import fork_schema
from caffe2torch.io.binary import read_caffemodel_arrays, write_caffemodel_arrays
from caffe2torch.io.text import read_net
from caffe2torch.proto import caffe_pb2

ROOT = Path(__file__).resolve().parent.parent
OURS_PROTO = ROOT / "proto" / "caffe.proto"
FORK_PROTO = ROOT / "tests" / "fixtures" / "fork_proto" / "fork.proto"
ALEXNET = [
    ("conv1", [(96, 3, 11, 11), (96,)]), ("conv2", [(256, 48, 5, 5), (256,)]),
    ("conv3", [(384, 256, 3, 3), (384,)]), ("conv4", [(384, 192, 3, 3), (384,)]),
    ("conv5", [(256, 192, 3, 3), (256,)]), ("fc6", [(4096, 9216), (4096,)]),
    ("fc7", [(4096, 4096), (4096,)]), ("fc8", [(1000, 4096), (1000,)]),
]


def timed(fn: Callable[[], object], repeat: int) -> float:
    runs = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - start)
    return statistics.median(runs)


def compile_times(proto: Path, repeat: int, cache: str) -> tuple[float, float]:
    def cold() -> None:
        fork_schema.clear_memory_cache()
        for f in Path(cache).glob("schemas/*.pb"):
            f.unlink()
        fork_schema.load_schema(proto)

    def from_disk() -> None:
        fork_schema.clear_memory_cache()
        fork_schema.load_schema(proto)

    return timed(cold, repeat), timed(from_disk, repeat)


def plain_text(blocks: int = 50) -> str:
    out = ['name: "r"', 'input: "data"', "input_shape { dim: 1 dim: 3 dim: 224 dim: 224 }"]
    bottom = "data"
    for i in range(blocks):
        for kind, extra in (("Convolution", "convolution_param { num_output: 64 kernel_size: 3 "
                             "pad: 1 weight_filler { type: \"msra\" } }"),
                            ("Convolution", "convolution_param { num_output: 64 kernel_size: 1 "
                             "weight_filler { type: \"msra\" } } param { lr_mult: 1 }"),
                            ("ReLU", "")):
            name = f"{kind.lower()}{i}_{len(out)}"
            out.append(f'layer {{ name: "{name}" type: "{kind}" bottom: "{bottom}" '
                       f'top: "{name}" {extra} }}')
            bottom = name
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--proto", type=Path, help="also time compiling this fork's caffe.proto")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["CAFFE2TORCH_CACHE_DIR"] = os.path.join(tmp, "cache")
        for proto in [OURS_PROTO, *([args.proto] if args.proto else [])]:
            cold, disk = compile_times(proto, args.repeat, os.environ["CAFFE2TORCH_CACHE_DIR"])
            print(f"compile {proto.name} ({len(proto.read_text().splitlines())} lines): "
                  f"{cold * 1e3:.1f} ms cold, {disk * 1e3:.1f} ms from the disk cache")
        fork_schema.clear_memory_cache()
        same = fork_schema.load_schema(OURS_PROTO)
        fork = fork_schema.load_schema(FORK_PROTO)

        net = caffe_pb2.NetParameter(name="alexnet")
        arrays = []
        rng = np.random.default_rng(0)
        for name, shapes in ALEXNET:
            net.layer.add(name=name, type="Convolution" if name.startswith("conv")
                          else "InnerProduct")
            arrays.append([rng.standard_normal(s).astype(np.float32) for s in shapes])
        ours_file = os.path.join(tmp, "ours.caffemodel")
        fork_file = os.path.join(tmp, "fork.caffemodel")
        write_caffemodel_arrays(ours_file, net, arrays)
        write_caffemodel_arrays(fork_file, net, arrays, proto=fork)
        size = os.path.getsize(ours_file) / 1e6
        t_ours = timed(lambda: read_caffemodel_arrays(ours_file), args.repeat)
        t_same = timed(lambda: read_caffemodel_arrays(ours_file, proto=same), args.repeat)
        t_fork = timed(lambda: read_caffemodel_arrays(fork_file, proto=fork), args.repeat)
        print(f"caffemodel {size:.0f} MB: ours {t_ours * 1e3:.0f} ms; fork schema with BVLC "
              f"numbers {t_same * 1e3:.0f} ms ({t_same / t_ours:.2f}x); renumbered fork "
              f"{t_fork * 1e3:.0f} ms ({t_fork / t_ours:.2f}x)")

        text_file = os.path.join(tmp, "r.prototxt")
        Path(text_file).write_text(plain_text())
        t_ours = timed(lambda: read_net(text_file), args.repeat)
        t_fork = timed(lambda: read_net(text_file, proto=fork), args.repeat)
        t_same = timed(lambda: read_net(text_file, proto=same), args.repeat)
        print(f"prototxt (150 layers): ours {t_ours * 1e3:.1f} ms; fork schema with BVLC "
              f"numbers {t_same * 1e3:.1f} ms ({t_same / t_ours:.2f}x); renumbered fork "
              f"{t_fork * 1e3:.1f} ms ({t_fork / t_ours:.2f}x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
