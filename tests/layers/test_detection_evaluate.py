"""DetectionEvaluate (weiliu89/caffe, SSD) against a loop transcription of the fork: the
per-class positive counts, then per detection [image, label, score, tp, fp] with greedy
matching by score, difficult boxes, images without truth, and the background check."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from caffe2torch.errors import BuildError, DataError
from tests.layers.helpers_core import build


def iou(a, b):
    iw = min(a[2], b[2]) - max(a[0], b[0])
    ih = min(a[3], b[3]) - max(a[1], b[1])
    if iw <= 0 or ih <= 0:
        return 0.0
    inter = iw * ih
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def reference(det, gt, num_classes, background, thr, difficult_gt):
    rows = []
    for c in range(num_classes):
        if c == background:
            continue
        n = sum(1 for g in gt if g[0] != -1 and g[1] == c and (difficult_gt or not g[7]))
        rows.append([-1, c, n, -1, -1])
    images = sorted({int(d[0]) for d in det if d[0] != -1})
    for image in images:
        for label in sorted({int(d[1]) for d in det if d[0] == image}):
            mine = [d for d in det if d[0] == image and d[1] == label]
            truth = [g for g in gt if g[0] == image and g[1] == label]
            if not truth:
                rows += [[image, label, d[2], 0, 1] for d in mine]
                continue
            mine.sort(key=lambda d: -d[2])
            seen = [False] * len(truth)
            for d in mine:
                overlaps = [iou(d[3:7], g[3:7]) for g in truth]
                j = int(np.argmax(overlaps))
                row = [image, label, d[2], 0, 0]
                if overlaps[j] >= thr:
                    if difficult_gt or not truth[j][7]:
                        row[3:] = [0, 1] if seen[j] else [1, 0]
                        seen[j] = True
                else:
                    row[3:] = [0, 1]
                rows.append(row)
    return np.array(rows, dtype=np.float32)


DET = np.array([
    [0, 1, 0.9, 0.1, 0.1, 0.5, 0.5],
    [0, 1, 0.95, 0.12, 0.1, 0.52, 0.5],  # a duplicate of the same object, higher score
    [0, 2, 0.7, 0.6, 0.6, 0.9, 0.9],     # no truth of label 2 in image 0
    [0, 1, 0.3, 0.6, 0.1, 0.9, 0.4],     # matches the difficult box
    [1, 3, 0.8, 0.0, 0.0, 0.3, 0.3],     # image 1 has no truth at all
    [-1, -1, -1, -1, -1, -1, -1],
], dtype=np.float32)
GT = np.array([
    [0, 1, 0, 0.1, 0.1, 0.5, 0.5, 0],
    [0, 1, 1, 0.6, 0.1, 0.9, 0.4, 1],
    [0, 3, 2, 0.2, 0.2, 0.4, 0.4, 0],
], dtype=np.float32)


@pytest.mark.parametrize("difficult_gt", [True, False])
def test_matches_fork(difficult_gt: bool) -> None:
    m = build(f"""name: "e" type: "DetectionEvaluate" bottom: "det" bottom: "gt" top: "eval"
              detection_evaluate_param {{ num_classes: 4 background_label_id: 0
              overlap_threshold: 0.5 evaluate_difficult_gt: {str(difficult_gt).lower()} }}""",
              [(1, 1, 6, 7), (1, 1, 3, 8)])
    out = m(torch.from_numpy(DET).reshape(1, 1, 6, 7), torch.from_numpy(GT).reshape(1, 1, 3, 8))
    want = reference(DET, GT, 4, 0, 0.5, difficult_gt)
    assert out.shape == (1, 1, 3 + 5, 5)
    np.testing.assert_allclose(out.reshape(-1, 5).numpy(), want, rtol=1e-6)


def test_background_label_is_an_error() -> None:
    m = build("""name: "e" type: "DetectionEvaluate" bottom: "det" bottom: "gt" top: "eval"
              detection_evaluate_param { num_classes: 4 }""", [(1, 1, 1, 7), (1, 1, 1, 8)])
    with pytest.raises(DataError, match="background label"):
        m(torch.from_numpy(DET[:1]).reshape(1, 1, 1, 7), torch.zeros(1, 1, 1, 8))


def test_name_size_file_is_refused() -> None:
    with pytest.raises(BuildError, match="name_size_file"):
        build("""name: "e" type: "DetectionEvaluate" bottom: "d" bottom: "g" top: "e"
              detection_evaluate_param { num_classes: 2 name_size_file: "x.txt" }""",
              [(1, 1, 1, 7), (1, 1, 1, 8)])
