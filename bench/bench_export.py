"""ONNX export speed: ResNet-50 (golden net, 224 x 224) exported with a symbolic batch, and
the same export with --verify (onnxruntime against PyTorch at batch 1 and 3); the goals are
export < 10 s and the check < 2x the export. The export and the export + check runs are
interleaved, so that load from other processes falls on both alike."""

from __future__ import annotations

import os
import tempfile

import caffe2torch as c2t
from bench.common import Report, shared, time_once
from caffe2torch.export import export_onnx

RESNET50 = "golden/nets/resnet50/net.prototxt"
GOAL_EXPORT = 10.0
GOAL_VERIFY_RATIO = 2.0


def run(report: Report, quick: bool) -> None:
    repeat = 2 if quick else 4
    net = c2t.load_net(shared(RESNET50))
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "m.onnx")
        export_onnx(net, path)  # warm-up: imports, first trace
        plain, checked = [], []
        for _ in range(repeat):
            plain.append(time_once(lambda: export_onnx(net, path)))
            checked.append(time_once(lambda: export_onnx(net, path, verify=True)))
    best = min(plain)
    ratios = sorted((c - p) / p for p, c in zip(plain, checked))
    ratio = ratios[len(ratios) // 2]
    report.add("export", "ResNet-50 export_onnx (dynamic batch)", f"best {best:.2f} s",
               f"< {GOAL_EXPORT:g} s", best < GOAL_EXPORT)
    report.add("export", "ResNet-50 --verify (batch 1 and 3) / export",
               f"median {ratio:.2f}x", f"< {GOAL_VERIFY_RATIO:g}x", ratio < GOAL_VERIFY_RATIO)
