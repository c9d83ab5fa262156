"""SegAccuracy of DeepLab-v2 and hszhao/PSPNet (seg_accuracy_layer.cpp, the same in both;
V1 ``type: SEG_ACCURACY`` in DeepLab's nets): a confusion matrix over the pixels.

Bottoms: scores (N, C, H, W) and labels (N, 1, H, W). Each pixel's prediction is the class
of the highest score, a tie going to the higher class (std::partial_sort with
std::greater on (score, class) pairs); its true class is int(label). Pixels whose label is
one of ``seg_accuracy_param.ignore_label`` (repeated) are skipped; any other label outside
0..C-1 stops the forward, as the fork's LOG(FATAL). The top (1, 1, 1, 3) is, from the
confusion matrix M (rows: true class, columns: predicted), in double, stored as float:

* overall pixel accuracy: trace(M) / sum(M) (0 without a counted pixel);
* mean class recall: the mean of M[i, i] / sum(M[i, :]) over the classes present in the
  labels (ConfusionMatrix::avgRecall(false); 0 when none is);
* mean IoU: the mean over all C classes of M[i, i] / (row i + column i - M[i, i]), a
  class with neither pixels nor predictions counting 1 (avgJaccard).

``reset`` (default true) clears the matrix at every forward; with ``reset: false`` it
keeps counting across forwards (the module's state, as the fork's layer). ``metric`` is
read by the fork's schema only (the layer always gives all three numbers). No gradient.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from caffe2torch.errors import DataError
from caffe2torch.layers.registry import BuildContext, Shape, register_layer

METRICS = ("PixelAccuracy", "ClassAccuracy", "PixelIOU")


def confusion_scores(matrix: torch.Tensor) -> tuple[float, float, float]:
    """(accuracy, avgRecall(false), avgJaccard) of a C x C count matrix, in double."""
    m = matrix.to(torch.float64)
    total = float(m.sum())
    diag = torch.diagonal(m)
    rows, cols = m.sum(dim=1), m.sum(dim=0)
    accuracy = float(diag.sum()) / total if total != 0 else 0.0
    present = rows > 0
    recall = float((diag[present] / rows[present]).sum() / present.sum()) if bool(
        present.any()) else 0.0
    union = rows + cols - diag
    jaccard = torch.where(diag == union, torch.ones_like(diag), diag / union)
    return accuracy, recall, float(jaccard.sum() / m.shape[0])


class SegAccuracy(nn.Module):
    """The fork's SegAccuracy (see the module doc)."""

    confusion: torch.Tensor

    def __init__(self, channels: int, ignore: tuple[int, ...], reset: bool) -> None:
        super().__init__()
        self.ignore = ignore
        self.reset = reset
        self.register_buffer("confusion", torch.zeros(channels, channels, dtype=torch.int64),
                             persistent=False)

    def infer_shapes(self, bottom_shapes: list[Shape]) -> list[Shape]:
        return [(1, 1, 1, 3)]

    def forward(self, scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            s = scores.detach()
            c = int(s.shape[1])
            # the last of the highest scores: argmax over the classes in reverse order
            predicted = (c - 1) - torch.argmax(s.flip(1), dim=1)
            truth = labels.detach().reshape(predicted.shape).to(torch.int64)  # static_cast
            keep = torch.ones_like(truth, dtype=torch.bool)
            for value in self.ignore:
                keep &= truth != value
            truth, predicted = truth[keep], predicted[keep]
            bad = (truth < 0) | (truth >= c)
            if bool(bad.any()):
                raise DataError(f"SegAccuracy: unexpected label {int(truth[bad][0])} for "
                                f"{c} classes", hint="labels must be 0..C-1 or one of "
                                "seg_accuracy_param.ignore_label")
            if self.reset:
                self.confusion.zero_()
            counts = torch.bincount(truth * c + predicted, minlength=c * c)
            self.confusion += counts.reshape(c, c).to(self.confusion.device)
            values = confusion_scores(self.confusion.cpu())
        return torch.tensor(values, dtype=scores.dtype, device=scores.device).reshape(1, 1,
                                                                                      1, 3)

    def extra_repr(self) -> str:
        return f"ignore={list(self.ignore)}, reset={self.reset}"


def _ints(value: Any) -> list[Any]:
    return list(value) if isinstance(value, (list, tuple)) else [value]


@register_layer("SegAccuracy", bottoms=2, tops=1, aliases=("SEG_ACCURACY",))
def build_seg_accuracy(ctx: BuildContext) -> nn.Module:
    block = ctx.extra_field("seg_accuracy_param", {}) or {}
    if not isinstance(block, dict):
        raise ctx.error(f"seg_accuracy_param must be a block, got {block!r}")
    unknown = sorted(set(block) - {"ignore_label", "reset", "metric"})
    if unknown:
        raise ctx.error(f"seg_accuracy_param has no field {unknown[0]!r}",
                        hint="its fields are ignore_label, reset and metric")
    ignore = _ints(block.get("ignore_label", []))
    if any(isinstance(v, bool) or not isinstance(v, int) for v in ignore):
        raise ctx.error(f"seg_accuracy_param.ignore_label takes integers, got {ignore}")
    reset = block.get("reset", True)
    if not isinstance(reset, (bool, int)) or reset not in (0, 1):
        raise ctx.error(f"seg_accuracy_param.reset must be true or false, got {reset!r}")
    metric = block.get("metric", "PixelAccuracy")
    if metric not in METRICS and metric not in range(len(METRICS)):
        raise ctx.error(f"unknown seg_accuracy_param.metric {metric!r}",
                        hint=f"the fork's metrics: {', '.join(METRICS)}")
    scores, labels = ctx.bottom_shapes
    if len(scores) != 4 or len(labels) != 4:
        raise ctx.error(f"needs 4-D bottoms (num, channels, height, width), got "
                        f"{list(scores)} and {list(labels)}")
    if scores[0] != labels[0]:
        raise ctx.error("the data and label should have the same number "
                        f"({scores[0]} vs {labels[0]})")
    if labels[1] != 1:
        raise ctx.error(f"the label should have one channel, got {labels[1]}")
    if tuple(scores[2:]) != tuple(labels[2:]):
        raise ctx.error(f"the data ({scores[2]}x{scores[3]}) should have the label's height "
                        f"and width ({labels[2]}x{labels[3]})")
    if scores[1] < 1:
        raise ctx.error("the scores need at least one channel (class)")
    return SegAccuracy(int(scores[1]), tuple(int(v) for v in ignore), bool(reset))
