"""Region layers of the R-CNN family and YOLO's Reorg, with their forks' numerics.

* ROIPooling (rbgirshick/caffe-fast-rcnn): each ROI [batch, x1, y1, x2, y2] is scaled by
  ``spatial_scale`` and rounded (half away from zero); its (y2 - y1 + 1) x (x2 - x1 + 1)
  box is cut into pooled_h x pooled_w bins [floor(i * size / n), ceil((i + 1) * size / n))
  (float arithmetic), clipped to the map; each bin takes its maximum (0 when empty). The
  gradient goes to the first maximum in row-major order, as the fork's CUDA backward.
* PSROIPooling (daijifeng001/caffe-rfcn, CUDA only): position-sensitive average pooling;
  bin (i, j) of output channel d reads input channel (d * k + i) * k + j. ROI corners are
  rounded, then scaled: start = round(x1) * scale, end = (round(x2) + 1) * scale, sizes at
  least 0.1; bins floor/ceil(i * size / k + start) clipped to the map; empty bins give 0.
* Reorg (BVLC/caffe PR #5906, YOLO v2): darknet's reorg_cpu index arithmetic, which reads
  the bottom's memory as (N, C / s^2, H * s, W * s) and writes it in (N, C, H, W) order;
  the top is that memory seen as (N, C * s^2, H / s, W / s). ``reverse`` is the inverse.
  The fork's CPU backward reads an unfilled buffer; the gradient here is the true one
  (the inverse permutation).
* YoloDetectionOutput (BVLC/caffe PR #5906, YOLO v2): the bottom's memory is read in
  (N, H, W, C) order; the ``num_box`` boxes of cell k = j * side + i take ceil(C / num_box)
  values each: x = (i + sigmoid(t0)) / side, y = (j + sigmoid(t1)) / side, w = exp(t2)
  biases[2n] / side, h = exp(t3) biases[2n + 1] / side, objectness sigmoid(t4), class =
  first argmax of the softmax of the next ``num_classes`` values, confidence = objectness *
  class probability. Boxes with confidence >= confidence_threshold go through the fork's
  greedy NMS in scan order (a later box goes when its Jaccard overlap with a kept one,
  corners clipped to [0, 1], is >= nms_threshold). The top is (1, 1, K, 7): rows [image,
  class, confidence, x, y, w, h] (centre form), every image in turn. No gradient.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from caffe2torch.errors import BuildError
from caffe2torch.layers.emit import Emit, emitter, num
from caffe2torch.layers.forks.ssd import bbox_size, jaccard_matrix
from caffe2torch.layers.portable import portable
from caffe2torch.layers.registry import BuildContext, register_layer
from caffe2torch.numerics import f32

_FLT_MAX = float(np.finfo(np.float32).max)


@portable
def round_half_away(x: torch.Tensor) -> torch.Tensor:
    """C's round(): halves away from zero (exact in double for float inputs)."""
    x = x.double()
    return torch.sign(x) * torch.floor(torch.abs(x) + 0.5)


def _rois(rois: torch.Tensor) -> np.ndarray:
    """(R, 5) float32 [batch, x1, y1, x2, y2] from a (R, 5) or (R, 5, 1, 1) bottom."""
    flat = rois.detach().to("cpu", torch.float32).reshape(rois.shape[0], -1)
    if flat.shape[1] < 5:
        raise BuildError(f"ROIs need 5 values each [batch, x1, y1, x2, y2], got {flat.shape[1]}")
    return flat[:, :5].numpy()


def _check_batch_indices(rois: np.ndarray, batch: int) -> None:
    for value in rois[:, 0]:
        index = int(value)  # static_cast<int>: truncation
        if not 0 <= index < batch:
            raise BuildError(f"ROI batch index {index} is outside the batch of {batch}")


@portable
def bin_masks(starts: torch.Tensor, ends: torch.Tensor) -> tuple[torch.Tensor, int]:
    """(bins, extent) boolean masks of each [start, end) over [lo, hi), and lo: the span
    from the first start to the last end."""
    lo = int(starts.min())
    hi = max(int(ends.max()), lo)
    pos = torch.arange(lo, hi, device=starts.device)
    return (pos[None, :] >= starts[:, None]) & (pos[None, :] < ends[:, None]), lo


# --------------------------------------------------------------------------- ROIPooling


@portable
def roi_bins(start: int, extent: int, n: int, limit: int) -> tuple[torch.Tensor, torch.Tensor]:
    """[lo, hi) of each of ``n`` bins over ``extent`` cells from ``start``:
    floor(i * size / n), ceil((i + 1) * size / n) in float, clipped to [0, limit]."""
    bin_size = torch.tensor(float(extent)) / torch.tensor(float(n))
    idx = torch.arange(n, dtype=torch.float32)
    lo = torch.floor(idx * bin_size).to(torch.int64) + start
    hi = torch.ceil((idx + 1.0) * bin_size).to(torch.int64) + start
    return lo.clamp(0, limit), hi.clamp(0, limit)


@portable
def roi_pooling(
    x: torch.Tensor, rois: torch.Tensor, pooled: tuple[int, int], spatial_scale: float
) -> torch.Tensor:
    """Fast R-CNN's ROIPooling of (N, C, H, W) ``x``: each ROI [batch, x1, y1, x2, y2] is
    scaled and rounded half away from zero; its (y2 - y1 + 1) x (x2 - x1 + 1) box is cut into
    ``pooled`` bins (roi_bins); each bin takes its maximum (0 when empty), the gradient going
    to the first maximum in row-major order. ``rois``: (R, 5 or more) float32."""
    size = (int(x.shape[2]), int(x.shape[3]))
    scale = torch.tensor(spatial_scale, dtype=torch.float32)
    outs = []
    for roi in rois.reshape(rois.shape[0], -1)[:, :5].detach().cpu().float():
        start_w, start_h, end_w, end_h = (int(v) for v in round_half_away(roi[1:5] * scale))
        hs, he = roi_bins(start_h, max(end_h - start_h + 1, 1), pooled[0], size[0])
        ws, we = roi_bins(start_w, max(end_w - start_w + 1, 1), pooled[1], size[1])
        feature = x[int(roi[0])]
        empty = ((he[:, None] <= hs[:, None]) | (we[None, :] <= ws[None, :])).to(x.device)
        mask_w, w0 = bin_masks(ws.to(x.device), we.to(x.device))
        mask_h, h0 = bin_masks(hs.to(x.device), he.to(x.device))
        if mask_w.shape[1] == 0 or mask_h.shape[1] == 0:
            outs.append(x.new_zeros((x.shape[1], *pooled)))
            continue
        crop = feature[:, h0 : h0 + mask_h.shape[1], w0 : w0 + mask_w.shape[1]]
        # max over each w-bin, then over each h-bin: the first maximum in row-major order
        cols = crop.unsqueeze(2).masked_fill(~mask_w[None, None], float("-inf")).max(dim=3)
        rows = cols.values.unsqueeze(1).masked_fill(~mask_h[None, :, :, None], float("-inf"))
        top = rows.max(dim=2).values
        top = top.clamp_min(-3.4028234663852886e38)  # the fork starts every bin at -FLT_MAX
        outs.append(torch.where(empty, 0.0, top))
    if not outs:
        return x.new_zeros((0, x.shape[1], *pooled))
    return torch.stack(outs)


class CaffeROIPooling(nn.Module):
    def __init__(self, pooled_h: int, pooled_w: int, spatial_scale: float) -> None:
        super().__init__()
        self.pooled = (pooled_h, pooled_w)
        self.spatial_scale = spatial_scale

    def infer_shapes(self, bottom_shapes: list[tuple[int, ...]]) -> list[tuple[int, ...]]:
        return [(bottom_shapes[1][0], bottom_shapes[0][1], *self.pooled)]

    def forward(self, x: torch.Tensor, rois: torch.Tensor) -> torch.Tensor:
        if x.device.type == "meta":
            return x.new_empty(self.infer_shapes([tuple(x.shape), tuple(rois.shape)])[0])
        _check_batch_indices(_rois(rois), x.shape[0])
        return roi_pooling(x, rois, self.pooled, self.spatial_scale)

    def extra_repr(self) -> str:
        return f"pooled={self.pooled}, spatial_scale={self.spatial_scale}"


@register_layer("ROIPooling", param="roi_pooling_param", bottoms=2)
def build_roi_pooling(ctx: BuildContext) -> nn.Module:
    p = ctx.param
    if p.pooled_h <= 0 or p.pooled_w <= 0:
        raise ctx.error("pooled_h and pooled_w must be > 0")
    if len(ctx.bottom_shapes[0]) != 4:
        raise ctx.error(f"needs a 4-D feature map bottom, got {ctx.bottom_shapes[0]}")
    return CaffeROIPooling(int(p.pooled_h), int(p.pooled_w), float(f32(p.spatial_scale)))


# --------------------------------------------------------------------------- PSROIPooling


@portable
def psroi_bins(
    start: torch.Tensor, end: torch.Tensor, group: int, limit: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """PSROIPoolingForward's ``group`` bins from float ``start`` to ``end``: sizes at least
    0.1 ("force too small ROIs to be 1x1"), floor/ceil(i * size / group + start), clipped
    to [0, limit]."""
    extent = torch.clamp(end - start, min=0.1)
    bin_size = extent / torch.tensor(float(group))
    idx = torch.arange(group, dtype=torch.float32)
    lo = torch.floor(idx * bin_size + start).to(torch.int64)
    hi = torch.ceil((idx + 1.0) * bin_size + start).to(torch.int64)
    return lo.clamp(0, limit), hi.clamp(0, limit)


@portable
def psroi_pooling(
    x: torch.Tensor, rois: torch.Tensor, spatial_scale: float, output_dim: int, group: int
) -> torch.Tensor:
    """R-FCN's PSROIPooling of (N, output_dim * group^2, H, W) ``x``: bin (i, j) of output
    channel d averages input channel (d * group + i) * group + j over the bin; 0 for an
    empty bin. ROI corners are rounded, then scaled: start = round(x1) * scale, end =
    (round(x2) + 1) * scale (psroi_bins). ``rois``: (R, 5 or more) float32."""
    k, d = group, output_dim
    size = (int(x.shape[2]), int(x.shape[3]))
    scale = torch.tensor(spatial_scale, dtype=torch.float32)
    outs = []
    for roi in rois.reshape(rois.shape[0], -1)[:, :5].detach().cpu().float():
        corners = round_half_away(roi[1:5]).float()
        start = corners[:2] * scale
        end = (corners[2:].double() + 1.0).float() * scale
        hs, he = psroi_bins(start[1], end[1], k, size[0])
        ws, we = psroi_bins(start[0], end[0], k, size[1])
        feature = x[int(roi[0])].reshape(d, k, k, *size)
        area = ((he - hs)[:, None] * (we - ws)[None, :]).to(device=x.device, dtype=torch.float32)
        empty = area <= 0
        mask_h, h0 = bin_masks(hs.to(x.device), he.to(x.device))
        mask_w, w0 = bin_masks(ws.to(x.device), we.to(x.device))
        crop = feature[..., h0 : h0 + mask_h.shape[1], w0 : w0 + mask_w.shape[1]]
        sums = torch.einsum("dpqhw,ph,qw->dpq", crop, mask_h.to(x.dtype), mask_w.to(x.dtype))
        outs.append(torch.where(empty, 0.0, sums / torch.where(empty, 1.0, area)))
    if not outs:
        return x.new_zeros((0, d, k, k))
    return torch.stack(outs)


class CaffePSROIPooling(nn.Module):
    def __init__(self, spatial_scale: float, output_dim: int, group_size: int) -> None:
        super().__init__()
        self.spatial_scale = spatial_scale
        self.output_dim = output_dim
        self.group_size = group_size

    def infer_shapes(self, bottom_shapes: list[tuple[int, ...]]) -> list[tuple[int, ...]]:
        k = self.group_size
        return [(bottom_shapes[1][0], self.output_dim, k, k)]

    def forward(self, x: torch.Tensor, rois: torch.Tensor) -> torch.Tensor:
        if x.device.type == "meta":
            return x.new_empty(self.infer_shapes([tuple(x.shape), tuple(rois.shape)])[0])
        _check_batch_indices(_rois(rois), x.shape[0])
        return psroi_pooling(x, rois, self.spatial_scale, self.output_dim, self.group_size)

    def extra_repr(self) -> str:
        return (
            f"spatial_scale={self.spatial_scale}, output_dim={self.output_dim}, "
            f"group_size={self.group_size}"
        )


@register_layer("PSROIPooling", param="psroi_pooling_param", bottoms=2)
def build_psroi_pooling(ctx: BuildContext) -> nn.Module:
    p = ctx.param
    for name in ("spatial_scale", "output_dim", "group_size"):
        if not p.HasField(name):
            raise ctx.error(f"psroi_pooling_param needs {name} (a required field)")
    if p.output_dim <= 0 or p.group_size <= 0:
        raise ctx.error("output_dim and group_size must be > 0")
    shape = ctx.bottom_shapes[0]
    if len(shape) != 4:
        raise ctx.error(f"needs a 4-D feature map bottom, got {shape}")
    if shape[1] != p.output_dim * p.group_size**2:
        raise ctx.error(
            f"input channel number ({shape[1]}) does not match output_dim * group_size^2 "
            f"({p.output_dim} * {p.group_size}^2)"
        )
    return CaffePSROIPooling(float(f32(p.spatial_scale)), int(p.output_dim), int(p.group_size))


# --------------------------------------------------------------------------- Reorg


class CaffeReorg(nn.Module):
    """darknet's reorg (see the module doc); ``reverse`` undoes it."""

    def __init__(self, stride: int, reverse: bool) -> None:
        super().__init__()
        self.stride = stride
        self.reverse = reverse

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        s = self.stride
        if not self.reverse:
            # bottom memory as (N, C / s^2, H, s, W, s) -> (N, s, s, C / s^2, H, W) in memory.
            view = x.reshape(n, c // (s * s), h, s, w, s)
            out = view.permute(0, 3, 5, 1, 2, 4).reshape(n, c * s * s, h // s, w // s)
            return out
        # The inverse: bottom memory as (N, s, s, C / s^2, H, W) scattered back.
        view = x.reshape(n, s, s, c // (s * s), h, w)
        return view.permute(0, 3, 4, 1, 5, 2).reshape(n, c // (s * s), h * s, w * s)

    def extra_repr(self) -> str:
        return f"stride={self.stride}, reverse={self.reverse}"


@register_layer("Reorg", param="reorg_param")
def build_reorg(ctx: BuildContext) -> nn.Module:
    p = ctx.param
    if not p.HasField("stride"):
        raise ctx.error("Reorg needs reorg_param { stride: S }")
    s = int(p.stride)
    if s <= 0:
        raise ctx.error("stride must be > 0")
    if ctx.layer.top and ctx.layer.bottom and ctx.layer.top[0] == ctx.layer.bottom[0]:
        raise ctx.error("Reorg does not allow in-place computation")
    shape = ctx.bottom_shapes[0]
    if len(shape) != 4:
        raise ctx.error(f"needs a 4-D bottom, got shape {shape}")
    _, c, h, w = shape
    if c % (s * s):
        raise ctx.error(f"channels ({c}) must be a multiple of stride^2 ({s * s})")
    if not p.reverse and (h % s or w % s):
        raise ctx.error(f"height and width ({h} x {w}) must be multiples of the stride ({s})")
    return CaffeReorg(s, bool(p.reverse))


# --------------------------------------------------------------------- YoloDetectionOutput


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return (f32(1) / (f32(1) + np.exp(-x))).astype(f32)


def yolo_greedy_nms(corners: np.ndarray, threshold: float) -> list[int]:
    """The fork's ApplyNms: scan order, a box suppresses every later box it overlaps by
    >= threshold unless it was suppressed itself."""
    iou = jaccard_matrix(corners, bbox_size(corners))
    suppressed = np.zeros(len(corners), dtype=bool)
    for i in range(len(corners)):
        if suppressed[i]:
            continue
        later = np.arange(len(corners)) > i
        suppressed |= later & (iou[i] >= f32(threshold))
    return [int(i) for i in np.nonzero(~suppressed)[0]]


def yolo_detections(
    x: np.ndarray, side: int, num_box: int, num_classes: int, biases: np.ndarray,
    confidence_threshold: float, nms_threshold: float,
) -> np.ndarray:
    """(K, 7) rows [image, class, confidence, x, y, w, h] for a (N, C, H, W) float32 map."""
    n, c, h, w = x.shape
    stride = (c + num_box - 1) // num_box
    cells = np.zeros((n, h * w, num_box * stride), dtype=f32)
    cells[:, :, :c] = x.transpose(0, 2, 3, 1).reshape(n, h * w, c)  # the fork's swap blob
    rows = []
    for b in range(n):
        found = []
        for j in range(side):
            for i in range(side):
                for box in range(num_box):
                    t = cells[b, j * side + i, box * stride:(box + 1) * stride]
                    logits = t[5:5 + num_classes]
                    e = np.exp(logits - logits.max()).astype(f32)
                    prob = (e / e.sum(dtype=f32)).astype(f32)
                    cls = int(np.argmax(prob))
                    conf = f32(_sigmoid(t[4:5])[0] * prob[cls])
                    if conf < f32(confidence_threshold):
                        continue
                    xy = _sigmoid(t[0:2])
                    wh = (np.exp(t[2:4]) * biases[2 * box:2 * box + 2]).astype(f32)
                    found.append((cls, conf, f32((i + xy[0]) / f32(side)),
                                  f32((j + xy[1]) / f32(side)), f32(wh[0] / f32(side)),
                                  f32(wh[1] / f32(side))))
        if not found:
            continue
        centre = np.array([f[2:] for f in found], dtype=np.float64)
        corners = np.stack([centre[:, 0] - centre[:, 2] / 2.0, centre[:, 1] - centre[:, 3] / 2.0,
                            centre[:, 0] + centre[:, 2] / 2.0, centre[:, 1] + centre[:, 3] / 2.0],
                           axis=1)
        corners = np.clip(corners.astype(f32), f32(0), f32(1))
        for k in yolo_greedy_nms(corners, nms_threshold):
            rows.append([b, *found[k]])
    return np.array(rows, dtype=f32).reshape(-1, 7)


class CaffeYoloDetectionOutput(nn.Module):
    def __init__(
        self, side: int, num_box: int, num_classes: int, biases: list[float],
        confidence_threshold: float, nms_threshold: float,
    ) -> None:
        super().__init__()
        self.side = side
        self.num_box = num_box
        self.num_classes = num_classes
        self.biases = np.array(biases, dtype=f32)
        self.confidence_threshold = confidence_threshold
        self.nms_threshold = nms_threshold

    def infer_shapes(self, bottom_shapes: list[tuple[int, ...]]) -> list[tuple[int, ...]]:
        return [(1, 1, 1, 7)]  # Reshape's placeholder, as the fork

    def forward(self, x: torch.Tensor, *unused: torch.Tensor) -> torch.Tensor:
        if x.device.type == "meta":
            return x.new_empty((1, 1, 1, 7))
        rows = yolo_detections(
            x.detach().to("cpu", torch.float32).numpy(), self.side, self.num_box,
            self.num_classes, self.biases, self.confidence_threshold, self.nms_threshold,
        )
        return torch.from_numpy(rows.reshape(1, 1, -1, 7)).to(device=x.device, dtype=x.dtype)

    def extra_repr(self) -> str:
        return (
            f"side={self.side}, num_box={self.num_box}, num_classes={self.num_classes}, "
            f"confidence_threshold={self.confidence_threshold}, "
            f"nms_threshold={self.nms_threshold}"
        )


@register_layer("YoloDetectionOutput", param="yolo_detection_output_param", bottoms=(1, 2))
def build_yolo_detection_output(ctx: BuildContext) -> nn.Module:
    p = ctx.param
    if not p.HasField("num_classes"):
        raise ctx.error("must specify num_classes",
                        hint="yolo_detection_output_param { num_classes: N }")
    if p.visualize:
        raise ctx.error("visualize draws boxes into image files; it is not supported",
                        hint="remove visualize: true")
    shape = ctx.bottom_shapes[0]
    if len(shape) != 4:
        raise ctx.error(f"needs a 4-D bottom, got {list(shape)}")
    side, num_box, classes = int(p.side), int(p.num_box), int(p.num_classes)
    if num_box <= 0 or side <= 0:
        raise ctx.error("side and num_box must be > 0")
    if len(p.biases) < 2 * num_box:
        raise ctx.error(f"needs 2 biases (anchor w, h) per box: {2 * num_box}, got "
                        f"{len(p.biases)}")
    stride = (shape[1] + num_box - 1) // num_box
    if stride < 5 + classes:
        raise ctx.error(f"{shape[1]} channels give {stride} values per box, fewer than "
                        f"5 + num_classes ({5 + classes})")
    if side * side > shape[2] * shape[3]:
        # side is a grid the layer assumes, not read from the bottom; its default 13 is
        # YOLOv2's 416 x 416 input at stride 32
        given = ("as set in yolo_detection_output_param" if p.HasField("side") else
                 "the default, as yolo_detection_output_param does not set it; YOLOv2's "
                 "416 x 416 input at stride 32")
        bottom = ctx.layer.bottom[0] if ctx.layer.bottom else "the bottom"
        raise ctx.error(
            f"side {side} ({given}) needs {side} x {side} = {side * side} cells, but the "
            f"bottom '{bottom}' is {shape[2]} x {shape[3]} cells: its size follows from the "
            f"net's input size and the strides before this layer",
            hint=f"set `side: {shape[2]}` in yolo_detection_output_param to match the "
            f"bottom, or give the input size the net was made for (at stride 32, side "
            f"{side} is a {32 * side} x {32 * side} input)")
    return CaffeYoloDetectionOutput(
        side, num_box, classes, [float(b) for b in p.biases][: 2 * num_box],
        float(f32(p.confidence_threshold)), float(f32(p.nms_threshold)),
    )


# ----------------------------------------------------------------------------- standalone source
# convert's emitters for the module classes above (caffe2torch.layers.emit)


@emitter(CaffeReorg)
def _emit_reorg(e: Emit) -> list[str]:
    """darknet's reorg: a fixed reshape / permute / reshape of the blob's memory."""
    _, c, h, w = e.bottom_shapes[0]
    s = e.module.stride
    x = e.bottoms[0]
    if not e.module.reverse:
        return e.assign(f"{x}.reshape({x}.shape[0], {c // (s * s)}, {h}, {s}, {w}, {s})"
                        f".permute(0, 3, 5, 1, 2, 4).reshape({x}.shape[0], {c * s * s}, "
                        f"{h // s}, {w // s})")
    return e.assign(f"{x}.reshape({x}.shape[0], {s}, {s}, {c // (s * s)}, {h}, {w})"
                    f".permute(0, 3, 4, 1, 5, 2).reshape({x}.shape[0], {c // (s * s)}, "
                    f"{h * s}, {w * s})")


@emitter(CaffeROIPooling)
def _emit_roi_pooling(e: Emit) -> list[str]:
    m = e.module
    args = f"{', '.join(e.bottoms)}, {m.pooled}, {num(m.spatial_scale)}"
    return e.assign(e.call("roi_pooling", args))


@emitter(CaffePSROIPooling)
def _emit_psroi_pooling(e: Emit) -> list[str]:
    m = e.module
    args = f"{', '.join(e.bottoms)}, {num(m.spatial_scale)}, {m.output_dim}, {m.group_size}"
    return e.assign(e.call("psroi_pooling", args))
