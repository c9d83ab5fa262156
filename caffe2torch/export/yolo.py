"""YOLO v2's YoloDetectionOutput (BVLC/caffe PR #5906) as standard ONNX: the decode in
elementwise ops, the fork's greedy NMS as one NonMaxSuppression per image, reproducing
the layer's (1, 1, K, 7) rows [image, class, confidence, x, y, w, h] (see
layers.forks.detection for the rules).

How the fork's NMS maps onto ONNX's (the same devices as DetectionOutput's, detection.py):

* the fork scans boxes in memory order (cell j * side + i, then box), not by score: NMS is
  fed each box's rank in that order as its score (strictly decreasing, > 0), and -1 for a
  box whose confidence is below ``confidence_threshold`` (the fork skips only what
  compares below, so it keeps >= and NaN);
* one NMS group per image over every class (the fork's NMS ignores the class);
* the fork drops a box whose overlap is >= ``nms_threshold``, ONNX one whose overlap is >
  its threshold: the threshold given is the float32 just below the fork's;
* the overlap is of the corners clipped to [0, 1], computed in double then rounded to
  float32, as the fork.

The selected (image, box) pairs come out of NonMaxSuppression in image order, then in
rank order, which is the fork's row order; no box kept gives (1, 1, 0, 7), as the fork.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from caffe2torch.export.detection import _NonMaxSuppression


def _sigmoid(x: torch.Tensor) -> torch.Tensor:
    """1 / (1 + exp(-x)) written out, as the fork (onnxruntime's Sigmoid approximates)."""
    return 1.0 / (1.0 + torch.exp(-x))


class OnnxYoloDetectionOutput(nn.Module):
    """YoloDetectionOutput in ONNX-exportable ops (see the module doc)."""

    def __init__(self, layer: nn.Module) -> None:
        super().__init__()
        self.__dict__["layer"] = layer  # not a submodule: the net owns it
        self.blobs = nn.ParameterList()

    def forward(self, x: torch.Tensor, *unused: torch.Tensor) -> torch.Tensor:
        layer = self.__dict__["layer"]
        side, nb, nc = int(layer.side), int(layer.num_box), int(layer.num_classes)
        c, h, w = int(x.shape[1]), int(x.shape[2]), int(x.shape[3])
        stride = (c + nb - 1) // nb
        cells = x.permute(0, 2, 3, 1).reshape(-1, h * w, c)  # the fork's (N, H, W, C) read
        if nb * stride > c:  # the fork's swap blob is zero past the bottom's channels
            pad = torch.zeros_like(cells[:, :, :1]).expand(-1, -1, nb * stride - c)
            cells = torch.cat([cells, pad], -1)
        t = cells[:, : side * side].reshape(-1, side * side * nb, stride)  # (B, N, stride)
        count = side * side * nb
        logits = t[..., 5:5 + nc]
        e = torch.exp(logits - logits.max(-1, keepdim=True).values)
        prob = e / e.sum(-1, keepdim=True)
        best, cls = prob.max(-1)  # the first of equal maxima, as the fork's argmax
        conf = _sigmoid(t[..., 4]) * best
        xy = _sigmoid(t[..., 0:2])
        anchors = torch.from_numpy(np.asarray(layer.biases, np.float32).reshape(nb, 2))
        wh = torch.exp(t[..., 2:4]) * anchors.repeat(side * side, 1)
        cell = torch.arange(side * side).repeat_interleave(nb)
        col = (cell % side).to(x.dtype)
        row = torch.div(cell, side, rounding_mode="floor").to(x.dtype)
        bx = (col + xy[..., 0]) / float(side)
        by = (row + xy[..., 1]) / float(side)
        bw = wh[..., 0] / float(side)
        bh = wh[..., 1] / float(side)
        cx, cy, hw, hh = bx.double(), by.double(), bw.double() / 2.0, bh.double() / 2.0
        corners = torch.stack([cx - hw, cy - hh, cx + hw, cy + hh], -1).float().clamp(0.0, 1.0)
        rank = torch.arange(count, 0, -1, dtype=x.dtype) / count  # scan order, > 0
        # the fork skips a box when conf < threshold: a NaN confidence is kept
        above = torch.logical_not(conf < float(np.float32(layer.confidence_threshold)))
        scores = torch.where(above, rank.expand_as(conf), torch.full_like(conf, -1.0))
        threshold = float(np.nextafter(np.float32(layer.nms_threshold), np.float32(-1)))
        selected = _NonMaxSuppression.apply(corners, scores.unsqueeze(1), count, threshold, 0.0)
        image = torch.ones_like(conf) * torch.arange(conf.shape[0], dtype=x.dtype).reshape(-1, 1)
        rows = torch.stack([image, cls.to(x.dtype), conf, bx, by, bw, bh], -1).reshape(-1, 7)
        picked = selected[:, 0] * count + selected[:, 2]
        return rows.index_select(0, picked).reshape(1, 1, -1, 7)
