"""Layers of the SSD fork (weiliu89/caffe, branch ssd): Normalize, Permute, PriorBox and
DetectionOutput, with the fork's CPU numerics.

* Normalize (``norm_param``): x / sqrt(sum(x^2) + eps) over C x H x W (``across_spatial``)
  or over C at each position, times a learned scale (one value, or one per channel).
  Across space Caffe multiplies by float(1.0 / norm); per position it divides. Its
  backward scales the input gradient by the scale after the normalisation's Jacobian
  (s * J^T dy rather than J^T (s * dy)): different for per-channel scales, and reproduced.
  NormFace's layer of the same name (``normalize_param``) is built by
  ``caffe2torch.layers.forks.face.build_feature_normalize``.
* Permute: the axes listed in ``order`` first, the others after them in their old order.
* PriorBox: default boxes of one feature map, (1, 2, H * W * num_priors * 4): first the
  corners of every box (normalised by the image size), then the variances. The fork
  truncates min_size / max_size to int and mixes float and double arithmetic; both are
  reproduced.
* DetectionOutput: decode every prior with its variance (CORNER, CENTER_SIZE, CORNER_SIZE),
  per-class greedy NMS (score > confidence_threshold, stable sort, top_k, IoU <= threshold,
  adaptive ``eta``), keep_top_k over all classes, then rows [image_id, label, score, xmin,
  ymin, xmax, ymax] grouped by image, then by ascending label, each label in NMS order.
  With no detection at all the top is (1, 1, num, 7) of -1 with the image ids in column 0.
  RefineDet (sfzhang15/RefineDet) adds the anchor refinement module's bottoms: arm_conf
  (bottom 3: a prior whose objectness, channel 1 of its two, is below ``objectness_score``
  gets scores 1 for label 0 and 0 for the others: OSGetConfidenceScores) and arm_loc
  (bottom 4: the priors are first decoded by it, then the loc predictions against those
  refined priors with the priors' variances: CasRegDecodeBBoxesAll). weiliu89's layer
  takes a fourth bottom and ignores it, so four bottoms mean arm_conf only when the net
  writes objectness_score; five always do.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from caffe2torch.errors import BuildError
from caffe2torch.ir.shapes import is_feature_normalize
from caffe2torch.layers.emit import Emit, emitter, num
from caffe2torch.layers.fillers import make_filled
from caffe2torch.layers.portable import portable
from caffe2torch.layers.registry import BuildContext, register_layer
from caffe2torch.limits import check_blob
from caffe2torch.numerics import f32
from caffe2torch.proto import caffe_pb2

_FLT_MAX = float(np.finfo(np.float32).max)

# --------------------------------------------------------------------------- Normalize


@portable
def ssd_normalize(flat: torch.Tensor, across_spatial: bool, eps: float) -> torch.Tensor:
    """SSD's Normalize of ``flat`` (N, C, H * W) before its scale: x / sqrt(sum x^2 + eps)
    over C x H x W of each item (``across_spatial``: times the reciprocal rounded to float,
    as caffe_cpu_scale(dim, Dtype(1.0 / norm)) does) or over C at each position."""
    if across_spatial:
        norm = torch.sqrt((flat * flat).sum(dim=(1, 2)) + eps)
        inv = (1.0 / norm.double()).to(flat.dtype)
        return flat * inv[:, None, None]
    norm = torch.sqrt((flat * flat).sum(dim=1, keepdim=True) + eps)
    return flat / norm


class CaffeNormalize(nn.Module):
    """SSD's L2 normalisation with a learned scale (see the module doc)."""

    def __init__(self, scale: torch.Tensor, across_spatial: bool, eps: float) -> None:
        super().__init__()
        self.blobs = nn.ParameterList([nn.Parameter(scale)])
        self.across_spatial = across_spatial
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c = x.shape[0], x.shape[1]
        flat = x.reshape(n, c, -1)
        scale = self.blobs[0]
        s = scale.reshape(1, 1, 1) if scale.dim() == 0 else scale.reshape(1, c, 1)
        # The fork's backward multiplies the normalisation's input gradient by the scale
        # (s * J^T dy) instead of scaling dy first (J^T (s * dy)); the two differ for
        # per-channel scales. Both detach tricks leave the values exactly unchanged.
        routed = flat.detach() + (flat - flat.detach()) * s.detach()
        normed = self._normalize(routed)
        y = normed.detach() * s + (normed - normed.detach())
        return y.reshape(x.shape)

    def _normalize(self, flat: torch.Tensor) -> torch.Tensor:
        return ssd_normalize(flat, self.across_spatial, self.eps)

    def extra_repr(self) -> str:
        shared = self.blobs[0].dim() == 0
        return f"across_spatial={self.across_spatial}, channel_shared={shared}, eps={self.eps}"


def _is_feature_normalize(ctx: BuildContext) -> bool:
    """NormFace's "Normalize" (normalize_param) rather than SSD's (norm_param): ir.shapes'
    rule."""
    shape = ctx.bottom_shapes[0] if ctx.bottom_shapes else ()
    return is_feature_normalize(ctx.layer, len(shape), ctx.num_tops)


def _build_feature_normalize(ctx: BuildContext) -> nn.Module:
    try:
        from caffe2torch.layers.forks.face import build_feature_normalize
    except ImportError:
        raise ctx.error(
            "NormFace's Normalize (normalize_param) is not available",
            hint="caffe2torch.layers.forks.face must define build_feature_normalize(ctx)",
        ) from None
    return build_feature_normalize(ctx)


@register_layer("Normalize", param="norm_param", tops=(1, 2), blobs=("scale",))
def build_normalize(ctx: BuildContext) -> nn.Module:
    """One registration for both forks' "Normalize" types (see _is_feature_normalize)."""
    if _is_feature_normalize(ctx):
        return _build_feature_normalize(ctx)
    shape = ctx.bottom_shapes[0]
    if len(shape) < 2:
        raise ctx.error(f"the bottom needs at least 2 axes, got shape {shape}")
    if ctx.num_tops != 1:
        raise ctx.error(f"SSD's Normalize has exactly 1 top, got {ctx.num_tops}")
    p = ctx.param
    blob_shape: tuple[int, ...] = () if p.channel_shared else (shape[1],)
    if p.HasField("scale_filler"):
        scale = make_filled(blob_shape, p.scale_filler, ctx.options.get("generator"))
    else:
        check_blob(blob_shape)
        scale = torch.ones(blob_shape)  # the fork's default: constant 1
    return CaffeNormalize(scale, bool(p.across_spatial), float(f32(p.eps)))


# --------------------------------------------------------------------------- Permute


class CaffePermute(nn.Module):
    def __init__(self, order: tuple[int, ...]) -> None:
        super().__init__()
        self.order = order

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.order == tuple(range(x.dim())):
            return x  # the fork shares data and diff when nothing moves
        return x.permute(self.order).contiguous()

    def extra_repr(self) -> str:
        return f"order={self.order}"


@register_layer("Permute", param="permute_param")
def build_permute(ctx: BuildContext) -> nn.Module:
    num_axes = len(ctx.bottom_shapes[0])
    order: list[int] = []
    for axis in ctx.param.order:
        if axis >= num_axes:
            raise ctx.error(f"order {axis} should be less than the input dimension ({num_axes})")
        if axis in order:
            raise ctx.error(f"duplicate order {axis}")
        order.append(int(axis))
    order += [i for i in range(num_axes) if i not in order]  # the rest, in their old order
    return CaffePermute(tuple(order))


# --------------------------------------------------------------------------- PriorBox


@dataclass(frozen=True)
class PriorBoxSpec:
    min_sizes: tuple[int, ...]  # int: the fork stores each size in an `int` before use
    max_sizes: tuple[int, ...]
    aspect_ratios: tuple[float, ...]  # float32 values, 1 first, flipped ones after each
    clip: bool
    variance: tuple[float, ...]  # one value or four
    img_h: int  # 0: from bottom[1]
    img_w: int
    step_h: float  # 0: image size / layer size
    step_w: float
    offset: float

    @property
    def num_priors(self) -> int:
        return len(self.aspect_ratios) * len(self.min_sizes) + len(self.max_sizes)


def prior_boxes(
    spec: PriorBoxSpec, layer_hw: tuple[int, int], img_hw: tuple[int, int]
) -> np.ndarray:
    """PriorBoxLayer::Forward_cpu for a layer_h x layer_w map: a (2, H * W * P * 4) float32
    array of box corners, then variances."""
    layer_h, layer_w = layer_hw
    img_h, img_w = (spec.img_h, spec.img_w) if spec.img_h and spec.img_w else img_hw
    if spec.step_h and spec.step_w:
        step_h, step_w = f32(spec.step_h), f32(spec.step_w)
    else:  # static_cast<float>(img) / layer: a float division
        step_h, step_w = f32(img_h) / f32(layer_h), f32(img_w) / f32(layer_w)
    offset = f32(spec.offset)
    # Box (width, height) per prior at one position, in the fork's order, as floats.
    sizes: list[tuple[np.float32, np.float32]] = []
    for s, min_size in enumerate(spec.min_sizes):
        sizes.append((f32(min_size), f32(min_size)))
        if spec.max_sizes:
            side = f32(math.sqrt(float(min_size * spec.max_sizes[s])))  # sqrt(int * int)
            sizes.append((side, side))
        for ar in spec.aspect_ratios:
            if abs(ar - 1.0) < 1e-6:
                continue
            root = math.sqrt(float(ar))  # ::sqrt(double)
            sizes.append((f32(min_size * root), f32(min_size / root)))
    box_w = np.array([w for w, _ in sizes], dtype=np.float64)
    box_h = np.array([h for _, h in sizes], dtype=np.float64)
    # center = (index + offset) * step, all float.
    cx = ((np.arange(layer_w, dtype=f32) + offset) * step_w).astype(np.float64)
    cy = ((np.arange(layer_h, dtype=f32) + offset) * step_h).astype(np.float64)
    cx = np.broadcast_to(cx[None, :, None], (layer_h, layer_w, len(sizes)))
    cy = np.broadcast_to(cy[:, None, None], (layer_h, layer_w, len(sizes)))
    # (center - size / 2.) / img in double, stored as float.
    corners = np.stack(
        [
            (cx - box_w / 2.0) / img_w,
            (cy - box_h / 2.0) / img_h,
            (cx + box_w / 2.0) / img_w,
            (cy + box_h / 2.0) / img_h,
        ],
        axis=-1,
    ).astype(f32)
    if spec.clip:
        corners = np.clip(corners, f32(0), f32(1))
    boxes = corners.reshape(-1)
    variances = np.resize(np.array(spec.variance, dtype=f32), boxes.shape)
    return np.stack([boxes, variances])


class CaffePriorBox(nn.Module):
    """Default boxes: (1, 2, H * W * num_priors * 4), the same for every image."""

    def __init__(self, spec: PriorBoxSpec) -> None:
        super().__init__()
        self.spec = spec
        self._cache: dict[tuple[int, int, int, int], np.ndarray] = {}

    def _priors(self, layer_hw: tuple[int, int], img_hw: tuple[int, int]) -> np.ndarray:
        key = (*layer_hw, *img_hw)
        if key not in self._cache:
            self._cache[key] = prior_boxes(self.spec, layer_hw, img_hw)
        return self._cache[key]

    def infer_shapes(self, bottom_shapes: list[tuple[int, ...]]) -> list[tuple[int, ...]]:
        h, w = bottom_shapes[0][2], bottom_shapes[0][3]
        return [(1, 2, h * w * self.spec.num_priors * 4)]

    def forward(self, x: torch.Tensor, image: torch.Tensor | None = None) -> torch.Tensor:
        layer_hw = (int(x.shape[2]), int(x.shape[3]))
        img_hw = (int(image.shape[2]), int(image.shape[3])) if image is not None else (0, 0)
        if x.device.type == "meta":
            return x.new_empty(self.infer_shapes([tuple(x.shape)])[0])
        priors = torch.from_numpy(self._priors(layer_hw, img_hw))
        return priors.to(device=x.device, dtype=x.dtype).unsqueeze(0)

    def extra_repr(self) -> str:
        s = self.spec
        return (
            f"min_size={s.min_sizes}, max_size={s.max_sizes}, aspect_ratios={s.aspect_ratios}, "
            f"clip={s.clip}, variance={s.variance}, step=({s.step_h}, {s.step_w}), "
            f"offset={s.offset}"
        )


def _prior_box_spec(ctx: BuildContext, p: Any) -> PriorBoxSpec:
    if not p.min_size:
        raise ctx.error("must provide min_size", hint="add prior_box_param { min_size: ... }")
    if any(m <= 0 for m in p.min_size):
        raise ctx.error("min_size must be positive")
    ratios: list[float] = [1.0]
    for ar in p.aspect_ratio:
        ar = float(f32(ar))
        if any(abs(ar - r) < 1e-6 for r in ratios):
            continue
        ratios.append(ar)
        if p.flip:
            ratios.append(float(f32(1.0 / ar)))
    min_sizes = tuple(int(m) for m in p.min_size)
    max_sizes: tuple[int, ...] = ()
    if p.max_size:
        if len(p.max_size) != len(p.min_size):
            raise ctx.error(
                f"{len(p.max_size)} max_size for {len(p.min_size)} min_size: give one per min_size"
            )
        for lo, hi in zip(p.min_size, p.max_size):
            if not hi > lo:
                raise ctx.error(f"max_size ({hi}) must be greater than min_size ({lo})")
        max_sizes = tuple(int(m) for m in p.max_size)
    variance = tuple(float(f32(v)) for v in p.variance) or (float(f32(0.1)),)
    if len(variance) not in (1, 4):
        raise ctx.error(f"give 1 or 4 variance values, got {len(variance)}")
    if any(v <= 0 for v in variance):
        raise ctx.error("variance must be positive")
    img_h = img_w = 0
    if p.HasField("img_h") or p.HasField("img_w"):
        if p.HasField("img_size"):
            raise ctx.error("either img_size or img_h/img_w should be specified; not both")
        img_h, img_w = int(p.img_h), int(p.img_w)
        if img_h <= 0 or img_w <= 0:
            raise ctx.error("img_h and img_w should be larger than 0")
    elif p.HasField("img_size"):
        if p.img_size <= 0:
            raise ctx.error("img_size should be larger than 0")
        img_h = img_w = int(p.img_size)
    step_h = step_w = 0.0
    if p.HasField("step_h") or p.HasField("step_w"):
        if p.HasField("step"):
            raise ctx.error("either step or step_h/step_w should be specified; not both")
        step_h, step_w = float(p.step_h), float(p.step_w)
        if step_h <= 0 or step_w <= 0:
            raise ctx.error("step_h and step_w should be larger than 0")
    elif p.HasField("step"):
        if p.step <= 0:
            raise ctx.error("step should be larger than 0")
        step_h = step_w = float(p.step)
    return PriorBoxSpec(
        min_sizes=min_sizes,
        max_sizes=max_sizes,
        aspect_ratios=tuple(ratios),
        clip=bool(p.clip),
        variance=variance,
        img_h=img_h,
        img_w=img_w,
        step_h=step_h,
        step_w=step_w,
        offset=float(p.offset),
    )


@register_layer("PriorBox", param="prior_box_param", bottoms=(1, 2))
def build_prior_box(ctx: BuildContext) -> nn.Module:
    spec = _prior_box_spec(ctx, ctx.param)
    shape = ctx.bottom_shapes[0]
    if len(shape) != 4:
        raise ctx.error(f"needs a 4-D feature map bottom, got shape {shape}")
    if not (spec.img_h and spec.img_w) and len(ctx.bottom_shapes) < 2:
        raise ctx.error(
            "without img_size (or img_h/img_w) the image size comes from a second bottom",
            hint='add `bottom: "data"` or prior_box_param { img_size: N }',
        )
    if shape[2] * shape[3] * spec.num_priors == 0:
        raise ctx.error(f"the feature map {shape} has no positions")
    return CaffePriorBox(spec)


# --------------------------------------------------------------------------- DetectionOutput

CORNER = caffe_pb2.PriorBoxParameter.CORNER
CENTER_SIZE = caffe_pb2.PriorBoxParameter.CENTER_SIZE
CORNER_SIZE = caffe_pb2.PriorBoxParameter.CORNER_SIZE
_CODE_NAMES: dict[int, str] = {CORNER: "CORNER", CENTER_SIZE: "CENTER_SIZE",
                               CORNER_SIZE: "CORNER_SIZE"}


def bbox_size(boxes: np.ndarray) -> np.ndarray:
    """BBoxSize (normalized): width * height in float, 0 for an inverted box."""
    w = boxes[..., 2] - boxes[..., 0]
    h = boxes[..., 3] - boxes[..., 1]
    invalid = (boxes[..., 2] < boxes[..., 0]) | (boxes[..., 3] < boxes[..., 1])
    return np.where(invalid, f32(0), w * h).astype(f32)


def decode_boxes(
    loc: np.ndarray,
    priors: np.ndarray,
    variances: np.ndarray,
    code_type: int,
    variance_in_target: bool,
) -> np.ndarray:
    """DecodeBBox for (P, 4) float32 predictions against (P, 4) priors and variances."""
    px0, py0, px1, py1 = (priors[:, i] for i in range(4))
    lx0, ly0, lx1, ly1 = (loc[:, i] for i in range(4))
    v = variances
    if code_type == CORNER:
        if variance_in_target:
            out = [px0 + lx0, py0 + ly0, px1 + lx1, py1 + ly1]
        else:
            out = [
                px0 + v[:, 0] * lx0,
                py0 + v[:, 1] * ly0,
                px1 + v[:, 2] * lx1,
                py1 + v[:, 3] * ly1,
            ]
        return np.stack(out, axis=1).astype(f32)
    pw = px1 - px0
    ph = py1 - py0
    if not (np.all(pw > 0) and np.all(ph > 0)):
        raise BuildError(
            f"{_CODE_NAMES[code_type]} decoding needs priors of positive width and height"
        )
    if code_type == CORNER_SIZE:
        if variance_in_target:
            out = [px0 + lx0 * pw, py0 + ly0 * ph, px1 + lx1 * pw, py1 + ly1 * ph]
        else:
            out = [
                px0 + v[:, 0] * lx0 * pw,
                py0 + v[:, 1] * ly0 * ph,
                px1 + v[:, 2] * lx1 * pw,
                py1 + v[:, 3] * ly1 * ph,
            ]
        return np.stack(out, axis=1).astype(f32)
    # CENTER_SIZE: centre offsets in float; exp(...) * size in double, stored as float.
    pcx = ((px0 + px1).astype(np.float64) / 2.0).astype(f32)
    pcy = ((py0 + py1).astype(np.float64) / 2.0).astype(f32)
    if variance_in_target:
        cx = lx0 * pw + pcx
        cy = ly0 * ph + pcy
        dw = (np.exp(lx1.astype(np.float64)) * pw).astype(f32)
        dh = (np.exp(ly1.astype(np.float64)) * ph).astype(f32)
    else:
        cx = v[:, 0] * lx0 * pw + pcx
        cy = v[:, 1] * ly0 * ph + pcy
        dw = (np.exp((v[:, 2] * lx1).astype(np.float64)) * pw).astype(f32)
        dh = (np.exp((v[:, 3] * ly1).astype(np.float64)) * ph).astype(f32)
    cx64, cy64 = cx.astype(np.float64), cy.astype(np.float64)
    out64 = [cx64 - dw / 2.0, cy64 - dh / 2.0, cx64 + dw / 2.0, cy64 + dh / 2.0]
    return np.stack(out64, axis=1).astype(f32)


def jaccard_matrix(boxes: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """JaccardOverlap (normalized) of every pair of (K, 4) float32 boxes, in float."""
    b1 = boxes[:, None, :]
    b2 = boxes[None, :, :]
    apart = (
        (b2[..., 0] > b1[..., 2])
        | (b2[..., 2] < b1[..., 0])
        | (b2[..., 1] > b1[..., 3])
        | (b2[..., 3] < b1[..., 1])
    )
    iw = np.minimum(b1[..., 2], b2[..., 2]) - np.maximum(b1[..., 0], b2[..., 0])
    ih = np.minimum(b1[..., 3], b2[..., 3]) - np.maximum(b1[..., 1], b2[..., 1])
    inter = iw * ih
    union = (sizes[:, None] + sizes[None, :]) - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = inter / union
    overlap = ~apart & (iw > 0) & (ih > 0)
    return np.where(overlap, iou, f32(0)).astype(f32)


def nms_fast(
    boxes: np.ndarray,
    sizes: np.ndarray,
    scores: np.ndarray,
    score_threshold: float,
    nms_threshold: float,
    eta: float,
    top_k: int,
) -> list[int]:
    """ApplyNMSFast: indices kept, best first."""
    candidates = np.nonzero(scores > f32(score_threshold))[0]
    order = candidates[np.argsort(-scores[candidates], kind="stable")]
    if top_k > -1:
        order = order[:top_k]
    if order.size == 0:
        return []
    iou = jaccard_matrix(boxes[order], sizes[order])
    threshold = f32(nms_threshold)
    kept: list[int] = []  # positions in `order`
    for i in range(order.size):
        if kept and not bool(np.all(iou[i, kept] <= threshold)):
            continue
        kept.append(i)
        if eta < 1 and threshold > 0.5:
            threshold = f32(threshold * f32(eta))
    return [int(order[i]) for i in kept]


@dataclass(frozen=True)
class DetectionOutputSpec:
    num_classes: int
    share_location: bool
    background_label_id: int
    code_type: int
    variance_in_target: bool
    keep_top_k: int
    confidence_threshold: float
    nms_threshold: float
    eta: float
    top_k: int
    # RefineDet: the objectness threshold when bottom 3 is arm_conf (None: weiliu89's layer)
    objectness_score: float | None = None


def objectness_filter(conf: np.ndarray, arm_conf: np.ndarray, threshold: float) -> np.ndarray:
    """RefineDet's OSGetConfidenceScores: ``conf`` (num, P, C) with every prior whose
    objectness ``arm_conf[..., 1]`` (num, P, 2) is below ``threshold`` set to 1 for label 0
    and 0 for the others (label 0 whatever background_label_id says, as the fork)."""
    easy = arm_conf[..., 1] < f32(threshold)
    out = conf.copy()
    out[easy] = 0.0
    out[..., 0][easy] = 1.0
    return out


def detection_output(
    loc: np.ndarray, conf: np.ndarray, prior: np.ndarray, spec: DetectionOutputSpec,
    arm_conf: np.ndarray | None = None, arm_loc: np.ndarray | None = None,
) -> np.ndarray:
    """DetectionOutputLayer::Forward_cpu on float32 arrays: (1, 1, N, 7). ``arm_conf`` and
    ``arm_loc``: RefineDet's bottoms 3 and 4 (the former used when
    ``spec.objectness_score`` is set)."""
    # Float overflow gives inf/nan as in C++, without numpy's warnings.
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        return _detection_output(loc, conf, prior, spec, arm_conf, arm_loc)


def _detection_output(
    loc: np.ndarray, conf: np.ndarray, prior: np.ndarray, spec: DetectionOutputSpec,
    arm_conf: np.ndarray | None, arm_loc: np.ndarray | None,
) -> np.ndarray:
    num = loc.shape[0]
    num_priors = prior.shape[-1] // 4
    prior = prior.reshape(-1)
    prior_boxes_ = prior[: num_priors * 4].reshape(num_priors, 4)
    prior_vars = prior[num_priors * 4 : num_priors * 8].reshape(num_priors, 4)
    num_loc_classes = 1 if spec.share_location else spec.num_classes
    loc = loc.reshape(num, num_priors, num_loc_classes, 4)
    conf = conf.reshape(num, num_priors, spec.num_classes)
    if arm_conf is not None and spec.objectness_score is not None:
        conf = objectness_filter(conf, arm_conf.reshape(num, num_priors, 2),
                                 spec.objectness_score)
    if arm_loc is not None:
        arm_loc = arm_loc.reshape(num, num_priors, 4)
    rows: list[list[float]] = []
    for i in range(num):
        priors_i = prior_boxes_
        if arm_loc is not None:  # the anchors refined by the ARM, clip false
            priors_i = decode_boxes(arm_loc[i], prior_boxes_, prior_vars, spec.code_type,
                                    spec.variance_in_target)
        decoded: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        for c in range(num_loc_classes):
            label = -1 if spec.share_location else c
            if label == spec.background_label_id and not spec.share_location:
                continue
            boxes = decode_boxes(
                loc[i, :, c], priors_i, prior_vars, spec.code_type, spec.variance_in_target
            )
            decoded[label] = (boxes, bbox_size(boxes))
        indices: dict[int, list[int]] = {}
        for c in range(spec.num_classes):
            if c == spec.background_label_id:
                continue
            boxes, sizes = decoded[-1 if spec.share_location else c]
            indices[c] = nms_fast(
                boxes,
                sizes,
                conf[i, :, c],
                spec.confidence_threshold,
                spec.nms_threshold,
                spec.eta,
                spec.top_k,
            )
        num_det = sum(len(v) for v in indices.values())
        if spec.keep_top_k > -1 and num_det > spec.keep_top_k:
            pairs = [(conf[i, idx, c], c, idx) for c in sorted(indices) for idx in indices[c]]
            order = sorted(range(len(pairs)), key=lambda k: -pairs[k][0])  # stable
            best: dict[int, list[int]] = {}
            for k in order[: spec.keep_top_k]:
                best.setdefault(pairs[k][1], []).append(pairs[k][2])
            indices = best
        for c in sorted(indices):
            boxes, _ = decoded[-1 if spec.share_location else c]
            for idx in indices[c]:
                rows.append([i, c, conf[i, idx, c], *boxes[idx]])
    if not rows:
        out = np.full((num, 7), -1.0, dtype=f32)
        out[:, 0] = np.arange(num)
        return out[None, None]
    return np.asarray(rows, dtype=f32)[None, None]


class CaffeDetectionOutput(nn.Module):
    """SSD's DetectionOutput (no gradient; the top's row count depends on the values)."""

    def __init__(self, spec: DetectionOutputSpec, layer_name: str = "") -> None:
        super().__init__()
        self.spec = spec
        self.layer_name = layer_name  # for the errors the forward raises on values

    def infer_shapes(self, bottom_shapes: list[tuple[int, ...]]) -> list[tuple[int, ...]]:
        return [(1, 1, 1, 7)]  # Reshape's placeholder, as the fork

    def _error(self, message: str) -> BuildError:
        who = f"layer '{self.layer_name}' (DetectionOutput): " if self.layer_name else ""
        return BuildError(who + message)

    def forward(
        self, loc: torch.Tensor, conf: torch.Tensor, prior: torch.Tensor, *arm: torch.Tensor
    ) -> torch.Tensor:
        if loc.device.type == "meta":
            return loc.new_empty((1, 1, 1, 7))
        num_priors = prior.shape[-1] // 4
        num_loc = 1 if self.spec.share_location else self.spec.num_classes
        if loc.shape[0] != conf.shape[0]:
            raise self._error(f"loc has {loc.shape[0]} images, conf {conf.shape[0]}")
        if loc[0].numel() != num_priors * num_loc * 4:
            raise self._error("the number of priors must match the number of location "
                              "predictions")
        if conf[0].numel() != num_priors * self.spec.num_classes:
            raise self._error("the number of priors must match the number of confidence "
                              "predictions")

        def host(t: torch.Tensor) -> np.ndarray:
            return t.detach().to("cpu", torch.float32).numpy()

        # weiliu89's fourth bottom is unused; RefineDet's are arm_conf and arm_loc
        arm_conf = host(arm[0]) if arm and self.spec.objectness_score is not None else None
        arm_loc = host(arm[1]) if len(arm) > 1 else None
        try:
            out = detection_output(host(loc), host(conf), host(prior), self.spec, arm_conf,
                                   arm_loc)
        except BuildError as e:  # a value DecodeBBox CHECKs (a prior of zero width)
            raise self._error(e.message) from None
        return torch.from_numpy(out).to(device=loc.device, dtype=loc.dtype)

    def extra_repr(self) -> str:
        s = self.spec
        return (
            f"num_classes={s.num_classes}, share_location={s.share_location}, "
            f"background_label_id={s.background_label_id}, "
            f"code_type={_CODE_NAMES.get(s.code_type, s.code_type)}, "
            f"nms_threshold={s.nms_threshold}, top_k={s.top_k}, keep_top_k={s.keep_top_k}, "
            f"confidence_threshold={s.confidence_threshold}"
            + ("" if s.objectness_score is None else f", objectness_score={s.objectness_score}")
        )


# RefineDet's objectness_score (its caffe.proto, field 24): our schema lacks it, so a net
# read without that proto keeps it aside (ctx.extra_field); RefineDet's default
_OBJECTNESS = "detection_output_param.objectness_score"
_OBJECTNESS_DEFAULT = 0.01


def _objectness(ctx: BuildContext) -> float | None:
    """RefineDet's threshold when bottom 3 is arm_conf, else None."""
    written = ctx.extra_field(_OBJECTNESS)
    n = len(ctx.bottom_shapes)
    if n == 5 or (n == 4 and written is not None):
        try:
            return float(f32(float(_OBJECTNESS_DEFAULT if written is None else written)))
        except (TypeError, ValueError):
            raise ctx.error(f"objectness_score must be a number, got {written!r}") from None
    return None


def _check_arm_shapes(ctx: BuildContext, num_priors: int) -> None:
    """RefineDet's arm_conf holds 2 scores per prior, arm_loc 4 offsets (one shared box:
    CasRegDecodeBBoxesAll reads label -1 only)."""
    for k, (what, per) in enumerate((("arm_conf", 2), ("arm_loc", 4)), start=3):
        if k >= len(ctx.bottom_shapes):
            return
        shape = ctx.bottom_shapes[k]
        if len(shape) < 2 or math.prod(shape[1:]) != num_priors * per:
            raise ctx.error(f"{what} (bottom {k}, shape {list(shape)}) must hold {per} values "
                            f"per prior for {num_priors} priors")


@register_layer("DetectionOutput", param="detection_output_param", bottoms=(3, 5))
def build_detection_output(ctx: BuildContext) -> nn.Module:
    p = ctx.param
    if not p.HasField("num_classes"):
        raise ctx.error(
            "must specify num_classes", hint="detection_output_param { num_classes: N }"
        )
    nms = p.nms_param
    if nms.nms_threshold < 0:
        raise ctx.error("nms_threshold must be non negative")
    if not 0 < nms.eta <= 1:
        raise ctx.error(f"nms_param eta must be in (0, 1], got {nms.eta}")
    if p.code_type not in _CODE_NAMES:
        raise ctx.error(f"unknown code_type {p.code_type}")
    spec = DetectionOutputSpec(
        num_classes=int(p.num_classes),
        share_location=bool(p.share_location),
        background_label_id=int(p.background_label_id),
        code_type=int(p.code_type),
        variance_in_target=bool(p.variance_encoded_in_target),
        keep_top_k=int(p.keep_top_k),
        confidence_threshold=(
            float(p.confidence_threshold) if p.HasField("confidence_threshold") else -_FLT_MAX
        ),
        nms_threshold=float(nms.nms_threshold),
        eta=float(nms.eta),
        top_k=int(nms.top_k) if nms.HasField("top_k") else -1,
        objectness_score=_objectness(ctx),
    )
    shapes = ctx.bottom_shapes
    if len(shapes) == 5 and not spec.share_location:
        raise ctx.error("RefineDet's arm_loc (bottom 4) refines one shared box per prior: "
                        "it needs share_location: true")
    if len(shapes) >= 3 and len(shapes[2]) >= 3:
        num_priors = shapes[2][2] // 4
        num_loc = 1 if spec.share_location else spec.num_classes
        if shapes[0][0] != shapes[1][0]:
            raise ctx.error(f"loc ({shapes[0]}) and conf ({shapes[1]}) differ in batch size")
        if len(shapes[0]) < 2 or shapes[0][1] != num_priors * num_loc * 4:
            raise ctx.error(
                f"number of priors ({num_priors}) must match number of location predictions "
                f"(bottom 0 shape {shapes[0]})"
            )
        if len(shapes[1]) < 2 or shapes[1][1] != num_priors * spec.num_classes:
            raise ctx.error(
                f"number of priors ({num_priors}) must match number of confidence predictions "
                f"(bottom 1 shape {shapes[1]}, {spec.num_classes} classes)"
            )
        if spec.objectness_score is not None:
            _check_arm_shapes(ctx, num_priors)
    return CaffeDetectionOutput(spec, ctx.layer.name)


# ----------------------------------------------------------------------------- standalone source
# convert's emitters for the module classes above (caffe2torch.layers.emit)


@emitter(CaffeNormalize)
def _emit_ssd_normalize(e: Emit) -> list[str]:
    m = e.module
    x = e.bottoms[0]
    c = e.bottom_shapes[0][1]
    normed = e.call("ssd_normalize", f"{x}.reshape({x}.shape[0], {c}, -1), "
                    f"{m.across_spatial}, {num(m.eps)}")
    # the learned scale: one value or one per channel
    shape = "1, 1, 1" if m.blobs[0].dim() == 0 else f"1, {c}, 1"
    return e.assign(f"({normed} * {e.param(0, 'scale')}.reshape({shape})).reshape({x}.shape)")


@emitter(CaffePermute)
def _emit_permute(e: Emit) -> list[str]:
    order = tuple(e.module.order)
    if order == tuple(range(len(e.bottom_shapes[0]))):
        return e.assign(e.bottoms[0])
    return e.assign(f"{e.bottoms[0]}.permute{order}.contiguous()")


@emitter(CaffePriorBox)
def _emit_prior_box(e: Emit) -> list[str]:
    """The boxes depend only on the (fixed) feature map and image sizes: computed once
    here and kept as a buffer."""
    shapes = [torch.zeros(s) for s in e.bottom_shapes]
    with torch.no_grad():
        boxes = e.module(*shapes)
    return [f"# {e.layer.name}: SSD default boxes of a {e.bottom_shapes[0][2]}x"
            f"{e.bottom_shapes[0][3]} map (fixed by the input size)",
            f"{e.tops[0]} = {e.buffer(boxes, 'boxes')}"]


@emitter(CaffeDetectionOutput)
def _emit_detection_output(e: Emit) -> list[str]:
    raise e.unsupported(
        "DetectionOutput (its non-maximum suppression keeps a value-dependent number of "
        "boxes)"
    )
