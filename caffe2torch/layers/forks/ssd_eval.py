"""SSD's ``DetectionEvaluate`` layer (weiliu89/caffe): scores DetectionOutput's boxes against
the ground truth of an AnnotatedData label top, for the solver's mAP.

Bottoms: detections (1, 1, D, 7) rows [image, label, score, xmin, ymin, xmax, ymax] (image
-1: none) and ground truth (1, 1, G, 8) rows [image, label, instance, xmin, ymin, xmax, ymax,
difficult]. The top is (1, 1, P + V, 5): first one row [-1, class, number of positives, -1,
-1] per non-background class (difficult boxes count only with ``evaluate_difficult_gt``),
then one row [image, label, score, true_pos, false_pos] per detection, images and labels in
increasing order; where the image has ground truth of that label the detections go by
decreasing score, each matched to the unmatched ground-truth box of largest normalized
Jaccard overlap >= ``overlap_threshold`` (a difficult match with ``evaluate_difficult_gt:
false`` scores 0, 0). V counts the detection rows whose label is not -1; rows of image -1
stay zero. A background label in either bottom is an error, as in the fork. No gradient.
``name_size_file`` (evaluating in pixel sizes) is refused.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import torch
from torch import nn

from caffe2torch.errors import DataError
from caffe2torch.layers.forks.ssd import bbox_size, jaccard_matrix
from caffe2torch.layers.registry import BuildContext, register_layer
from caffe2torch.numerics import f32


def _group(rows: np.ndarray, background: int, what: str) -> dict[int, dict[int, np.ndarray]]:
    """{image: {label: rows}} of the rows whose image is not -1 (GetDetectionResults,
    GetGroundTruth)."""
    out: dict[int, dict[int, list[np.ndarray]]] = defaultdict(lambda: defaultdict(list))
    for row in rows:
        image = int(row[0])
        if image == -1:
            continue
        label = int(row[1])
        if label == background:
            raise DataError(f"DetectionEvaluate: found the background label {background} in "
                            f"the {what}")
        out[image][label].append(row)
    return {i: {lab: np.stack(r) for lab, r in d.items()} for i, d in out.items()}


def evaluate_detections(
    det: np.ndarray, gt: np.ndarray, num_classes: int, background: int, threshold: float,
    difficult_gt: bool,
) -> np.ndarray:
    """The (P + V, 5) rows of DetectionEvaluate for (D, 7) detections and (G, 8) truth."""
    num_pos_classes = num_classes if background == -1 else num_classes - 1
    valid = int((det[:, 1] != -1).sum())
    top = np.zeros((num_pos_classes + valid, 5), dtype=f32)
    detections = _group(det, background, "detection results")
    truth = _group(gt, background, "dataset")
    positives: dict[int, int] = defaultdict(int)
    for labels in truth.values():
        for label, boxes in labels.items():
            positives[label] += len(boxes) if difficult_gt else int((boxes[:, 7] == 0).sum())
    k = 0
    for c in range(num_classes):
        if c == background:
            continue
        top[k] = [-1, c, positives.get(c, 0), -1, -1]
        k += 1
    for image in sorted(detections):
        for label in sorted(detections[image]):
            if label == -1:
                continue
            boxes = detections[image][label]
            gt_boxes = truth.get(image, {}).get(label)
            if gt_boxes is None:
                for box in boxes:
                    top[k] = [image, label, box[2], 0, 1]
                    k += 1
                continue
            boxes = boxes[np.argsort(-boxes[:, 2], kind="stable")]
            corners = np.concatenate([boxes[:, 3:7], gt_boxes[:, 3:7]]).astype(f32)
            overlap = jaccard_matrix(corners, bbox_size(corners))[: len(boxes), len(boxes):]
            visited = np.zeros(len(gt_boxes), dtype=bool)
            for i, box in enumerate(boxes):
                top[k, :3] = [image, label, box[2]]
                j = int(np.argmax(overlap[i]))  # first largest, as the fork's strict >
                if overlap[i, j] >= f32(threshold):
                    if difficult_gt or gt_boxes[j, 7] == 0:
                        top[k, 3:] = [0, 1] if visited[j] else [1, 0]
                        visited[j] = True
                else:
                    top[k, 3:] = [0, 1]
                k += 1
    return top


class CaffeDetectionEvaluate(nn.Module):
    def __init__(self, num_classes: int, background: int, threshold: float,
                 difficult_gt: bool) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.background = background
        self.threshold = threshold
        self.difficult_gt = difficult_gt

    def infer_shapes(self, bottom_shapes: list[tuple[int, ...]]) -> list[tuple[int, ...]]:
        pos = self.num_classes if self.background == -1 else self.num_classes - 1
        return [(1, 1, pos + bottom_shapes[0][2], 5)]  # every placeholder row counted

    def forward(self, det: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
        if det.device.type == "meta":
            return det.new_empty(self.infer_shapes([tuple(det.shape), tuple(gt.shape)])[0])
        rows = evaluate_detections(
            det.detach().to("cpu", torch.float32).numpy().reshape(-1, 7),
            gt.detach().to("cpu", torch.float32).numpy().reshape(-1, 8),
            self.num_classes, self.background, self.threshold, self.difficult_gt,
        )
        return torch.from_numpy(rows.reshape(1, 1, -1, 5)).to(det.device)

    def extra_repr(self) -> str:
        return (f"num_classes={self.num_classes}, background_label_id={self.background}, "
                f"overlap_threshold={self.threshold}, evaluate_difficult_gt={self.difficult_gt}")


@register_layer("DetectionEvaluate", param="detection_evaluate_param", bottoms=2)
def build_detection_evaluate(ctx: BuildContext) -> nn.Module:
    p = ctx.param
    if not p.HasField("num_classes"):
        raise ctx.error("must provide num_classes")
    if p.overlap_threshold <= 0:
        raise ctx.error("overlap_threshold must be > 0")
    if p.HasField("name_size_file"):
        raise ctx.error("name_size_file (evaluation in pixel sizes) is not supported",
                        hint="remove it to evaluate in normalized coordinates")
    det, gt = ctx.bottom_shapes
    if len(det) != 4 or det[:2] != (1, 1) or det[3] != 7:
        raise ctx.error(f"the detections must be (1, 1, D, 7), got {list(det)}")
    if len(gt) != 4 or gt[:2] != (1, 1) or gt[3] != 8:
        raise ctx.error(f"the ground truth must be (1, 1, G, 8), got {list(gt)}")
    return CaffeDetectionEvaluate(int(p.num_classes), int(p.background_label_id),
                                  float(f32(p.overlap_threshold)), bool(p.evaluate_difficult_gt))
