"""SSD's DetectionOutput as standard ONNX (TopK, NonMaxSuppression, Gather, ScatterND,
NonZero), reproducing Caffe's output: a (1, 1, N, 7) blob of rows [image, label, score,
xmin, ymin, xmax, ymax], images in order, then labels ascending, then score descending; N
rows of -1 (with the image id) per image... exactly as DetectionOutputLayer::Forward_cpu
writes when no box is kept (one row per image).

Steps, per image and per class other than the background (ApplyNMSFast, then keep_top_k):

1. decode every prior with its variance (CORNER, CORNER_SIZE, CENTER_SIZE; CENTER_SIZE's
   exp in double, as Caffe);
2. the ``top_k`` best scores per class (TopK keeps the lower index first on ties, as
   Caffe's stable sort);
3. NonMaxSuppression with ``nms_threshold`` (a box is dropped when its IoU with a kept
   one is above the threshold, as ApplyNMSFast; each (image, class) is its own NMS batch,
   as the boxes differ per class after step 2), fed the boxes' ranks from step 2 rather
   than their scores, so that equal scores (a softmax saturated at 1.0) keep Caffe's
   order, and -1 for boxes not above ``confidence_threshold``;
4. ``keep_top_k`` best of the kept boxes per image (TopK over the kept scores in
   (label, rank) order, which is Caffe's stable sort of its (label, index) pairs);
5. the kept rows in (image, label, rank) order by NonZero over the kept mask.

Exact where Caffe's NMS is: ``share_location: true`` and ``eta: 1`` (every SSD deploy file
in the corpus). Otherwise the export stops and names the layer.

The module's own forward (used only to trace) runs a plain greedy NMS; the exported file
is checked against the real layer.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from caffe2torch.errors import ExportError


class _NonMaxSuppression(torch.autograd.Function):
    """ONNX NonMaxSuppression over (G, K, 4) boxes and (G, 1, K) scores: (M, 3) int64 rows
    [group, 0, box index], groups in order, boxes by score descending."""

    @staticmethod
    def forward(ctx: Any, boxes: torch.Tensor, scores: torch.Tensor, max_out: int,
                iou_threshold: float, score_threshold: float) -> torch.Tensor:
        rows = []
        for g in range(boxes.shape[0]):
            s = scores[g, 0]
            order = torch.argsort(-s, stable=True)
            order = order[s[order] > score_threshold]
            suppressed = (_iou_matrix(boxes[g, order]) > iou_threshold).tolist()
            kept: list[int] = []
            for i in range(len(suppressed)):
                if len(kept) < max_out and not any(suppressed[i][j] for j in kept):
                    kept.append(i)
            rows += [[g, 0, int(order[i])] for i in kept]
        return torch.tensor(rows, dtype=torch.int64).reshape(-1, 3)

    @staticmethod
    def symbolic(g: Any, boxes: Any, scores: Any, max_out: int, iou_threshold: float,
                 score_threshold: float) -> Any:
        def const(value: torch.Tensor) -> Any:
            return g.op("Constant", value_t=value)

        return g.op("NonMaxSuppression", boxes, scores,
                    const(torch.tensor([max_out], dtype=torch.int64)),
                    const(torch.tensor([iou_threshold], dtype=torch.float32)),
                    const(torch.tensor([score_threshold], dtype=torch.float32)))


def _iou_matrix(b: torch.Tensor) -> torch.Tensor:
    """IoU of every pair of (K, 4) corner boxes (0 where they do not overlap)."""
    x0, y0, x1, y1 = b.unbind(-1)
    iw = (torch.minimum(x1[:, None], x1[None]) - torch.maximum(x0[:, None], x0[None])).clamp(0)
    ih = (torch.minimum(y1[:, None], y1[None]) - torch.maximum(y0[:, None], y0[None])).clamp(0)
    inter = iw * ih
    area = (x1 - x0) * (y1 - y0)
    union = area[:, None] + area[None] - inter
    return torch.where(inter > 0, inter / union, torch.zeros_like(inter))


class OnnxDetectionOutput(nn.Module):
    """DetectionOutput in ONNX-exportable ops (see the module doc)."""

    def __init__(self, spec: Any, num_priors: int) -> None:
        super().__init__()
        self.spec = spec
        self.num_priors = num_priors
        self.classes = [c for c in range(spec.num_classes) if c != spec.background_label_id]
        self.k = num_priors if spec.top_k < 0 else min(spec.top_k, num_priors)
        self.blobs = nn.ParameterList()

    def _decode(self, loc: torch.Tensor, prior: torch.Tensor) -> torch.Tensor:
        from caffe2torch.layers.forks.ssd import CENTER_SIZE, CORNER

        s = self.spec
        p = self.num_priors
        flat = prior.reshape(-1)
        pb = flat[: p * 4].reshape(1, p, 4)
        var = flat[p * 4: p * 8].reshape(1, p, 4)
        if s.variance_in_target:
            var = torch.ones_like(var)
        px0, py0, px1, py1 = pb.unbind(-1)
        lx0, ly0, lx1, ly1 = (loc * var).unbind(-1) if s.code_type != CENTER_SIZE else \
            loc.unbind(-1)
        if s.code_type == CORNER:
            return torch.stack([px0 + lx0, py0 + ly0, px1 + lx1, py1 + ly1], -1)
        pw, ph = px1 - px0, py1 - py0
        if s.code_type != CENTER_SIZE:  # CORNER_SIZE
            return torch.stack([px0 + lx0 * pw, py0 + ly0 * ph, px1 + lx1 * pw,
                                py1 + ly1 * ph], -1)
        v0, v1, v2, v3 = var.unbind(-1)
        pcx = ((px0 + px1).double() / 2.0).float()
        pcy = ((py0 + py1).double() / 2.0).float()
        cx = v0 * lx0 * pw + pcx
        cy = v1 * ly0 * ph + pcy
        dw = (torch.exp((v2 * lx1).double()) * pw.double()).float().double()
        dh = (torch.exp((v3 * ly1).double()) * ph.double()).float().double()
        cx64, cy64 = cx.double(), cy.double()
        return torch.stack([cx64 - dw / 2.0, cy64 - dh / 2.0, cx64 + dw / 2.0,
                            cy64 + dh / 2.0], -1).float()

    def forward(self, loc: torch.Tensor, conf: torch.Tensor, prior: torch.Tensor,
                *unused: torch.Tensor) -> torch.Tensor:
        s, p, k = self.spec, self.num_priors, self.k
        nc = len(self.classes)
        boxes = self._decode(loc.reshape(-1, p, 4), prior)  # (B, P, 4)
        scores = conf.reshape(-1, p, s.num_classes).transpose(1, 2)  # (B, C, P)
        labels = torch.tensor(self.classes, dtype=torch.int64)
        scores = scores.index_select(1, labels)  # (B, C', P)
        top, idx = torch.topk(scores, k, dim=2)  # (B, C', k), best first
        cand = torch.gather(boxes.unsqueeze(1).expand(-1, nc, -1, -1), 2,
                            idx.unsqueeze(-1).expand(-1, -1, -1, 4))  # (B, C', k, 4)
        # NMS sees ranks, not scores: TopK's order (lower index first on equal scores, as
        # Caffe's stable sort) must be NMS's order too, also where softmax saturates at 1.0
        rank = torch.arange(k, 0, -1, dtype=top.dtype) / k  # strictly decreasing, > 0
        above = top > float(s.confidence_threshold)
        nms_scores = torch.where(above, rank.expand_as(top), torch.full_like(top, -1.0))
        selected = _NonMaxSuppression.apply(
            cand.reshape(-1, k, 4), nms_scores.reshape(-1, 1, k), k, float(s.nms_threshold),
            0.0)
        # kept mask (B*C', k) from the selected (group, 0, rank) rows
        flat_pos = selected[:, 0] * k + selected[:, 2]
        kept = torch.zeros_like(top.reshape(-1)).scatter(0, flat_pos, 1.0)
        kept = kept.reshape(-1, nc * k)  # (B, C'*k), in (label, rank) order
        if s.keep_top_k > -1 and s.keep_top_k < nc * k:
            masked = torch.where(kept > 0, top.reshape(-1, nc * k),
                                 torch.full_like(kept, -float("inf")))
            best, where = torch.topk(masked, s.keep_top_k, dim=1)
            keep2 = torch.zeros_like(kept).scatter(1, where, (best > -float("inf")).float())
            kept = kept * keep2
        # dense rows (B, C', k, 7): image, label, score, box
        batch = torch.ones_like(top) * torch.arange(
            top.shape[0], dtype=top.dtype).reshape(-1, 1, 1)
        label = torch.ones_like(top) * labels.to(top.dtype).reshape(1, -1, 1)
        rows = torch.cat([batch.unsqueeze(-1), label.unsqueeze(-1), top.unsqueeze(-1), cand],
                         -1).reshape(-1, 7)
        # no box kept anywhere: one row of -1 per image, with its id (as Caffe)
        images = torch.arange(top.shape[0], dtype=top.dtype)
        fallback = torch.cat([images.unsqueeze(-1),
                              -torch.ones_like(images).unsqueeze(-1).expand(-1, 6)], -1)
        none = (kept.sum() == 0).float() * torch.ones_like(images)
        mask = torch.cat([kept.reshape(-1), none])
        picked = torch.nonzero(mask > 0).reshape(-1)
        return torch.cat([rows, fallback], 0).index_select(0, picked).reshape(1, 1, -1, 7)


def onnx_detection_output(layer: Any, module: Any, prior_shape: tuple[int, ...]) -> nn.Module:
    """The ONNX form of a built DetectionOutput, or ExportError naming what it lacks."""
    refuse_unexportable_nms(layer, module.spec, "to ONNX")
    return OnnxDetectionOutput(module.spec, int(prior_shape[-1]) // 4)


def refuse_unexportable_nms(layer: Any, s: Any, target: str) -> None:
    """ExportError for the DetectionOutput settings neither ONNX NonMaxSuppression nor
    TensorRT's NMS plugin express: a box per class (share_location: false), Caffe's
    adaptive NMS threshold (eta < 1) and RefineDet's five bottoms."""
    why = None
    if len(getattr(layer, "bottoms", ())) == 5:
        why = "RefineDet's arm_conf / arm_loc bottoms (refined priors) are not expressed"
    elif not s.share_location:
        why = "share_location: false (a box per class) is not decoded here"
    elif s.eta < 1:
        why = f"adaptive NMS (eta {s.eta}) has no fixed-threshold NMS form"
    if why:
        raise ExportError(f"layer '{layer.name}' (DetectionOutput) cannot be exported "
                          f"{target}: {why}", hint="export the part before it with --outputs BLOB")


class _MaxRoiPool(torch.autograd.Function):
    """ONNX MaxRoiPool; in PyTorch (to trace) the layer itself."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, rois: torch.Tensor, layer: nn.Module,
                pooled: tuple[int, int], scale: float) -> torch.Tensor:
        return layer(x, rois)

    @staticmethod
    def symbolic(g: Any, x: Any, rois: Any, layer: Any, pooled: tuple[int, int],
                 scale: float) -> Any:
        return g.op("MaxRoiPool", x, rois, pooled_shape_i=list(pooled), spatial_scale_f=scale)


class OnnxROIPooling(nn.Module):
    """Caffe's ROIPooling (Fast/Faster R-CNN) as ONNX MaxRoiPool: the same bins (ROI corners
    rounded after scaling, width and height at least 1, bin edges floor/ceil, empty bins 0)
    and rows [batch index, x1, y1, x2, y2]."""

    def __init__(self, layer: nn.Module) -> None:
        super().__init__()
        self.__dict__["layer"] = layer  # not a submodule: the net owns it
        self.blobs = nn.ParameterList()

    def forward(self, x: torch.Tensor, rois: torch.Tensor) -> torch.Tensor:
        layer = self.__dict__["layer"]
        return _MaxRoiPool.apply(x, rois.reshape(-1, 5), layer, tuple(layer.pooled),
                                 float(layer.spatial_scale))


def _round_half_away(x: torch.Tensor) -> torch.Tensor:
    """C's round() in float32 ops: floor(|x|) plus one where the fraction is >= 0.5 (exact,
    unlike floor(|x| + 0.5), which can round up below a half)."""
    a = x.abs()
    whole = torch.floor(a)
    return torch.sign(x) * (whole + (a - whole >= 0.5).to(x.dtype))


def _psroi_bins(start: torch.Tensor, end: torch.Tensor, group: int,
                limit: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(R, group) first and end row (or column) of each bin, as psroi_bins: float32
    floor/ceil of i * size / group + start, sizes at least 0.1, clipped to the map."""
    extent = torch.clamp(end - start, min=0.1)
    size = extent / float(group)
    idx = torch.arange(group, dtype=start.dtype)
    lo = torch.floor(idx[None] * size[:, None] + start[:, None])
    hi = torch.ceil((idx[None] + 1.0) * size[:, None] + start[:, None])
    return lo.clamp(0, limit), hi.clamp(0, limit)


class OnnxPSROIPooling(nn.Module):
    """R-FCN's PSROIPooling (see layers.forks.detection) in standard ops, without a loop
    over the ROIs: each ROI's bins become 0/1 masks over the rows and the columns of the
    map; summing a bin is then two batched MatMuls (the rows of each bin row i, then the
    columns of each bin column j, of the channels (d, i, j) that bin reads), the image
    picked per ROI by GatherElements, the sum divided by the bin's area (0 when empty).

    The ROI arithmetic is the layer's, in float32: corners rounded half away from zero,
    start = round(x1) * scale, end = (round(x2) + 1) * scale. An ROI whose batch index is
    outside the batch is an error in onnxruntime (Gather) as in the layer."""

    def __init__(self, layer: nn.Module) -> None:
        super().__init__()
        self.__dict__["layer"] = layer  # not a submodule: the net owns it
        self.blobs = nn.ParameterList()

    def forward(self, x: torch.Tensor, rois: torch.Tensor) -> torch.Tensor:
        layer = self.__dict__["layer"]
        k, d = int(layer.group_size), int(layer.output_dim)
        h, w = int(x.shape[2]), int(x.shape[3])
        scale = float(np.float32(layer.spatial_scale))
        r = rois.flatten(1)[:, :5]
        corners = _round_half_away(r[:, 1:5])
        hs, he = _psroi_bins(corners[:, 1] * scale, (corners[:, 3] + 1.0) * scale, k, h)
        ws, we = _psroi_bins(corners[:, 0] * scale, (corners[:, 2] + 1.0) * scale, k, w)
        rows = torch.arange(h, dtype=x.dtype)
        cols = torch.arange(w, dtype=x.dtype)
        mask_h = ((rows >= hs[..., None]) & (rows < he[..., None])).to(x.dtype)  # (R, k, H)
        mask_w = ((cols >= ws[..., None]) & (cols < we[..., None])).to(x.dtype)  # (R, k, W)
        # rows: (N, i, H, d*j*W) by (1, i, R, H) -> (N, i, R, d*j*W)
        feat = x.reshape(-1, d, k, k, h, w).permute(0, 2, 4, 1, 3, 5).reshape(-1, k, h, d * k * w)
        per_row = torch.matmul(mask_h.permute(1, 0, 2).unsqueeze(0), feat)
        # each ROI's own image: (R, 1, i, d*j*W)
        per_row = per_row.permute(2, 0, 1, 3)
        image = r[:, 0].to(torch.int64).reshape(-1, 1, 1, 1).expand(-1, 1, k, d * k * w)
        mine = torch.gather(per_row, 1, image).reshape(-1, k, d, k, w)
        # columns: (R, j, i*d, W) by (R, j, W, 1) -> (R, j, i*d)
        by_col = mine.permute(0, 3, 1, 2, 4).reshape(-1, k, k * d, w)
        sums = torch.matmul(by_col, mask_w.unsqueeze(-1)).reshape(-1, k, k, d)
        sums = sums.permute(0, 3, 2, 1)  # (R, d, i, j)
        area = ((he - hs)[:, :, None] * (we - ws)[:, None, :]).unsqueeze(1)  # (R, 1, i, j)
        empty = area <= 0
        return torch.where(empty, torch.zeros_like(sums),
                           sums / torch.where(empty, torch.ones_like(area), area))
