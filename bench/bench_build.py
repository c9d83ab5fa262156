"""Build time: read + upgrade + build (load_net) of Inception-ResNet-v2 (987 layers) and
of generated nets of 1,000 / 2,500 / 5,000 layers, to show the cost grows linearly."""

from __future__ import annotations

import os
import statistics
import tempfile

import caffe2torch as c2t
from bench.common import Report, min_median_time, shared, time_once

IRV2 = "corpus/soeaver__caffe-model/cls/inception/deploy_inception-resnet-v2.prototxt"
GOAL_IRV2 = 0.4


def generated_net(num_layers: int) -> str:
    """A residual chain: blocks of Convolution 3x3 -> BatchNorm -> Scale -> ReLU (in
    place) -> Eltwise SUM with the block input; one Input layer first."""
    lines = ['name: "gen"',
             'layer { name: "data" type: "Input" top: "data" '
             "input_param { shape { dim: 1 dim: 8 dim: 8 dim: 8 } } }"]
    count, prev, i = 1, "data", 0
    while count < num_layers:
        c = f"c{i}"
        block = [
            f'layer {{ name: "{c}" type: "Convolution" bottom: "{prev}" top: "{c}" '
            "convolution_param { num_output: 8 kernel_size: 3 pad: 1 bias_term: false } }",
            f'layer {{ name: "{c}_bn" type: "BatchNorm" bottom: "{c}" top: "{c}" }}',
            f'layer {{ name: "{c}_sc" type: "Scale" bottom: "{c}" top: "{c}" '
            "scale_param { bias_term: true } }",
            f'layer {{ name: "{c}_relu" type: "ReLU" bottom: "{c}" top: "{c}" }}',
            f'layer {{ name: "e{i}" type: "Eltwise" bottom: "{prev}" bottom: "{c}" '
            f'top: "e{i}" }}',
        ]
        block = block[: num_layers - count]
        lines += block
        count += len(block)
        prev = f"e{i}" if len(block) == 5 else c
        i += 1
    return "\n".join(lines) + "\n"


def run(report: Report, quick: bool) -> None:
    repeat = 3 if quick else 7
    path = shared(IRV2)
    t, med = min_median_time(lambda: c2t.load_net(path), repeat)
    n = len(c2t.load_net(path).layer_names)
    report.add("build time", f"Inception-ResNet-v2 ({n} layers) load_net",
               f"best {t:.3f} s, median {med:.3f} s", f"< {GOAL_IRV2} s", t < GOAL_IRV2)
    per_layer = []
    sizes = (1000, 2500, 5000)
    with tempfile.TemporaryDirectory() as tmp:
        paths = {}
        for layers in sizes:
            paths[layers] = os.path.join(tmp, f"gen{layers}.prototxt")
            with open(paths[layers], "w") as f:
                f.write(generated_net(layers))
            c2t.load_net(paths[layers])  # warm-up
        times: dict[int, list[float]] = {n: [] for n in sizes}
        for _ in range(max(3, repeat // 2 + 1)):  # sizes interleaved, as A/B ratios are
            for layers in sizes:
                times[layers].append(time_once(lambda p=paths[layers]: c2t.load_net(p)))
        for layers in sizes:
            t = statistics.median(times[layers])
            per_layer.append(t / layers)
            report.add("build time", f"generated {layers} layers load_net",
                       f"{t:.3f} s = {t / layers * 1e6:.0f} us/layer", "linear", None)
    spread = max(per_layer) / min(per_layer)
    report.add("build time", "linearity: max/min time per layer", f"{spread:.2f}",
               "<= 1.3", spread <= 1.3)
