"""YoloDetectionOutput (BVLC/caffe PR #5906) against a NumPy transcription of the fork: region
boxes from the (N, H, W, C) memory order, softmax classes, the confidence threshold and the
scan-order greedy NMS on clipped corners."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from caffe2torch.errors import BuildError
from tests.layers.helpers_core import build

BIASES = [1.08, 1.19, 3.42, 4.41]


def text(extra: str = "") -> str:
    biases = " ".join(f"biases: {b}" for b in BIASES)
    return f"""name: "det" type: "YoloDetectionOutput" bottom: "conv" bottom: "data"
        top: "det" yolo_detection_output_param {{ side: 3 num_classes: 3 num_box: 2
        {biases} {extra} }}"""


def iou(a, b):
    def corners(r):
        box = [r[0] - r[2] / 2, r[1] - r[3] / 2, r[0] + r[2] / 2, r[1] + r[3] / 2]
        return np.clip(box, 0, 1)

    a, b = corners(a), corners(b)
    iw = min(a[2], b[2]) - max(a[0], b[0])
    ih = min(a[3], b[3]) - max(a[1], b[1])
    if iw <= 0 or ih <= 0:
        return 0.0
    inter = iw * ih
    area = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1])
    return inter / (area - inter)


def reference(x, side, num_box, classes, biases, conf_thr, nms_thr):
    n, c, _, _ = x.shape
    per = c // num_box
    rows = []
    for b in range(n):
        found = []
        for j in range(side):
            for i in range(side):
                for k in range(num_box):
                    t = x[b, k * per:(k + 1) * per, j, i]
                    sig = 1 / (1 + np.exp(-t[:2]))
                    box = [(i + sig[0]) / side, (j + sig[1]) / side,
                           np.exp(t[2]) * biases[2 * k] / side,
                           np.exp(t[3]) * biases[2 * k + 1] / side]
                    e = np.exp(t[5:5 + classes] - t[5:5 + classes].max())
                    p = e / e.sum()
                    conf = p.max() / (1 + np.exp(-t[4]))
                    if conf >= conf_thr:
                        found.append((int(p.argmax()), conf, box))
        gone = set()
        for a in range(len(found)):
            if a in gone:
                continue
            for z in range(a + 1, len(found)):
                if z not in gone and iou(found[a][2], found[z][2]) >= nms_thr:
                    gone.add(z)
        rows += [[b, cls, conf, *box] for k, (cls, conf, box) in enumerate(found)
                 if k not in gone]
    return np.array(rows).reshape(-1, 7)


@pytest.mark.parametrize("thresholds", [(0.01, 0.45), (0.2, 0.3), (0.0, 1.0)],
                         ids=["defaults", "stricter", "no_nms"])
def test_matches_fork(thresholds) -> None:
    conf_thr, nms_thr = thresholds
    m = build(text(f"confidence_threshold: {conf_thr} nms_threshold: {nms_thr}"),
              [(2, 16, 3, 3), (2, 3, 96, 96)])
    gen = torch.Generator().manual_seed(7)
    x = torch.randn(2, 16, 3, 3, generator=gen) * 1.5
    out = m(x, torch.zeros(2, 3, 96, 96))
    want = reference(x.double().numpy(), 3, 2, 3, BIASES, conf_thr, nms_thr)
    assert out.shape == (1, 1, want.shape[0], 7)
    np.testing.assert_allclose(out.reshape(-1, 7).numpy(), want, rtol=1e-5, atol=1e-6)
    assert want.shape[0] > 0 and set(want[:, 0]) == {0.0, 1.0}


def test_no_detection_gives_an_empty_top() -> None:
    m = build(text("confidence_threshold: 0.99"), [(1, 16, 3, 3)])
    out = m(torch.full((1, 16, 3, 3), -5.0))
    assert out.shape == (1, 1, 0, 7)


def test_refusals() -> None:
    with pytest.raises(BuildError, match="biases"):
        build(text().replace("biases: 3.42 biases: 4.41", ""), [(1, 16, 3, 3)])
    with pytest.raises(BuildError, match="values per box"):
        build(text(), [(1, 12, 3, 3)])
