"""Loss layers of the detection and face forks, with each fork's forward and backward.

* ``SmoothL1Loss`` (py-faster-rcnn's caffe-fast-rcnn): bottoms prediction, target and
  optionally inside and outside weights. x = w_in (p - t); f(x) = 0.5 (sigma x)^2 when
  |x| < 1 / sigma^2, else |x| - 0.5 / sigma^2; loss = sum(w_out f(x)) / N (N = bottom 0's
  first axis). Its gradient is the derivative of that (autograd), +/- for p and t.
* ``SmoothL1Loss`` with two tops or three bottoms (one weight) is R-FCN's caffe's own
  SmoothL1Loss, built as ``SmoothL1LossOHEM`` below (py-faster-rcnn refuses three bottoms;
  with 2 or 4 bottoms and one top the two forks' rules are told apart by nothing in the
  file, and py-faster-rcnn's is used).
* ``SmoothL1LossOHEM`` (R-FCN's caffe): x = w (p - t) with an optional third bottom w;
  f with sigma 1; loss = sum f(x) / normalizer (``loss_param``: FULL and VALID divide by
  N * H * W, BATCH_SIZE by N, PRE_FIXED by ``pre_fixed_normalizer``, NONE by 1; never
  below 1). The optional second top is the per-item loss summed over channels, (N, 1, H,
  W). The fork's gradient is f'(x) / normalizer -- not multiplied by w again.
* ``SoftmaxWithLossOHEM`` (R-FCN's caffe): SoftmaxWithLoss with a third top, the per-item
  loss -log(max(p_label, FLT_MIN)) (0 where ignored) in the label's shape, no gradient.
* ``BoxAnnotatorOHEM`` (R-FCN's caffe): sorts the ROIs by their loss (bottom 1) from high
  to low and keeps at most ``roi_per_img`` per image (image index: column 0 of the ROI);
  the kept ROIs keep their label and bbox loss weights, the others get ``ignore_label``
  and zero weights. No gradient. Ties are kept in ROI order (the fork's std::sort leaves
  the order of equal losses unspecified).
* ``FocalLoss`` (xialuxi/arcface-caffe, from zimenglan-sysu-512/Focal-Loss): softmax over
  ``softmax_param.axis``, then -alpha (1 - p_t)^gamma log(max(p_t, FLT_MIN)) summed over the
  non-ignored items, divided by the ``loss_param`` normalizer (VALID: the non-ignored
  count). The gradient is the fork's: g (p_c - [c = t]) with g = alpha (1 - p_t)^gamma -
  gamma alpha (1 - p_t)^gamma / max(1 - p_t, 1e-10) p_t log p_t. ``type: LINEAR`` is
  refused: the softmax implementations of this layer never implemented it.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import nn

from caffe2torch.layers.bvlc.losses import (
    FLT_MIN,
    CaffeSoftmaxWithLoss,
    _axis_of,
    _check_first_dims,
    _check_label_count,
    _ignore_label,
    labelled,
    loss_normalizer,
    normalization_mode,
)
from caffe2torch.layers.registry import BuildContext, Shape, register_layer
from caffe2torch.numerics import f32
from caffe2torch.proto import caffe_pb2

PRE_FIXED = caffe_pb2.LossParameter.PRE_FIXED
FULL = caffe_pb2.LossParameter.FULL
VALID = caffe_pb2.LossParameter.VALID
BATCH_SIZE = caffe_pb2.LossParameter.BATCH_SIZE
NONE = caffe_pb2.LossParameter.NONE


def legacy_4d(shape: Shape) -> tuple[int, int, int, int]:
    """Blob's num/channels/height/width (1 for missing axes)."""
    dims = list(shape) + [1] * (4 - len(shape))
    return dims[0], dims[1], dims[2], math.prod(dims[3:])


def smooth_l1(x: torch.Tensor, sigma2: float) -> torch.Tensor:
    """0.5 sigma^2 x^2 where |x| < 1 / sigma^2, else |x| - 0.5 / sigma^2."""
    ax = x.abs()
    return torch.where(ax < 1.0 / sigma2, 0.5 * sigma2 * x * x, ax - 0.5 / sigma2)


def smooth_l1_grad(x: torch.Tensor, sigma2: float) -> torch.Tensor:
    """sigma^2 x where |x| < 1 / sigma^2, else sign(x)."""
    return torch.where(x.abs() < 1.0 / sigma2, sigma2 * x, torch.sign(x))


def _check_same_legacy(ctx: BuildContext, others: range) -> None:
    """The fork's Reshape: bottoms share channels, height and width with bottom 0."""
    first = legacy_4d(ctx.bottom_shapes[0])
    for i in others:
        other = legacy_4d(ctx.bottom_shapes[i])
        if other[1:] != first[1:]:
            raise ctx.error(
                f"bottom {i} {list(ctx.bottom_shapes[i])} must have the channels, height and "
                f"width of bottom 0 {list(ctx.bottom_shapes[0])}"
            )


# ----------------------------------------------------------------------------- SmoothL1Loss


class CaffeSmoothL1Loss(nn.Module):
    def __init__(self, sigma: float) -> None:
        super().__init__()
        self.sigma2 = float(f32(sigma) * f32(sigma))

    def forward(self, pred: torch.Tensor, target: torch.Tensor, *weights: torch.Tensor) -> Any:
        x = pred - target
        if weights:
            x = weights[0] * x
        errors = smooth_l1(x, self.sigma2)
        if weights:
            errors = weights[1] * errors
        return errors.sum() / pred.shape[0]

    def extra_repr(self) -> str:
        return f"sigma^2={self.sigma2}"


@register_layer(
    "SmoothL1Loss", param="smooth_l1_loss_param", bottoms=(2, 4), tops=(1, 2), loss=True,
)
def build_smooth_l1_loss(ctx: BuildContext) -> nn.Module:
    n = len(ctx.bottom_shapes)
    if ctx.num_tops == 2 or n == 3:
        # R-FCN's SmoothL1Loss: one weight bottom, a per-item second top
        return build_smooth_l1_loss_ohem(ctx)
    _check_same_legacy(ctx, range(1, n))
    return CaffeSmoothL1Loss(float(ctx.param.sigma))


# ------------------------------------------------------------------------- SmoothL1LossOHEM


def ohem_normalizer(mode: int, loss_param: Any, outer: int, inner: int) -> float:
    """SmoothL1LossOHEMLayer::get_normalizer (VALID counts every item, like FULL)."""
    if mode in (FULL, VALID):
        value = float(outer * inner)
    elif mode == BATCH_SIZE:
        value = float(outer)
    elif mode == PRE_FIXED:
        value = float(f32(loss_param.pre_fixed_normalizer))
    else:
        value = 1.0
    return max(1.0, value)


class _SmoothL1OHEMFunction(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: Any, pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None,
        normalizer: float,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        x = pred - target
        if weight is not None:
            x = weight * x
        errors = smooth_l1(x, 1.0)
        n, c, h, w = legacy_4d(tuple(pred.shape))
        per_item = errors.reshape(n, c, h, w).sum(dim=1, keepdim=True)
        ctx.save_for_backward(x)
        ctx.normalizer = normalizer
        ctx.mark_non_differentiable(per_item)
        return errors.sum() / normalizer, per_item

    @staticmethod
    def backward(
        ctx: Any, grad: torch.Tensor, _grad_per_item: torch.Tensor | None
    ) -> tuple[torch.Tensor | None, ...]:
        (x,) = ctx.saved_tensors
        diff = smooth_l1_grad(x, 1.0) * (grad / ctx.normalizer)
        return diff, -diff, None, None


class CaffeSmoothL1LossOHEM(nn.Module):
    def __init__(self, normalizer: float, num_tops: int) -> None:
        super().__init__()
        self.normalizer = normalizer
        self.num_tops = num_tops

    def forward(self, pred: torch.Tensor, target: torch.Tensor, *weight: torch.Tensor) -> Any:
        loss, per_item = _SmoothL1OHEMFunction.apply(
            pred, target, weight[0] if weight else None, self.normalizer
        )
        return loss if self.num_tops == 1 else (loss, per_item)


@register_layer("SmoothL1LossOHEM", bottoms=(2, 3), tops=(1, 2), loss=True)
def build_smooth_l1_loss_ohem(ctx: BuildContext) -> nn.Module:
    _check_same_legacy(ctx, range(1, len(ctx.bottom_shapes)))
    lp = ctx.layer.loss_param
    n, _, h, w = legacy_4d(ctx.bottom_shapes[0])
    mode = normalization_mode(lp)
    return CaffeSmoothL1LossOHEM(ohem_normalizer(mode, lp, n, h * w), ctx.num_tops)


# ---------------------------------------------------------------------- SoftmaxWithLossOHEM


class CaffeSoftmaxWithLossOHEM(nn.Module):
    """SoftmaxWithLoss (tops loss, prob) plus the per-item loss as a third top."""

    def __init__(self, axis: int, ignore_label: int | None, mode: int, num_tops: int) -> None:
        super().__init__()
        self.loss = CaffeSoftmaxWithLoss(axis, ignore_label, mode, 2)
        self.num_tops = num_tops

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> Any:
        loss, prob = self.loss(logits, labels)
        if self.num_tops == 1:
            return loss
        if self.num_tops == 2:
            return loss, prob
        p, safe, valid = labelled(prob.detach(), labels, self.loss.axis, self.loss.ignore_label)
        p = p.gather(1, safe).squeeze(1)
        per_item = torch.where(valid, -torch.log(torch.clamp(p, min=FLT_MIN)), 0.0)
        return loss, prob, per_item.reshape(labels.shape)


@register_layer(
    "SoftmaxWithLossOHEM", param="softmax_param", bottoms=2, tops=(1, 3), loss=True,
)
def build_softmax_with_loss_ohem(ctx: BuildContext) -> nn.Module:
    _check_first_dims(ctx)
    axis = _axis_of(ctx, ctx.layer.softmax_param.axis)
    _check_label_count(ctx, axis, "softmax")
    lp = ctx.layer.loss_param
    return CaffeSoftmaxWithLossOHEM(axis, _ignore_label(lp), normalization_mode(lp), ctx.num_tops)


# ------------------------------------------------------------------------- BoxAnnotatorOHEM


def annotate_ohem(
    rois: np.ndarray, loss: np.ndarray, labels: np.ndarray, weights: np.ndarray,
    roi_per_img: int, ignore_label: int,
) -> tuple[np.ndarray, np.ndarray]:
    """BoxAnnotatorOHEM's forward on (R, 5, S) rois, (R * S,) losses, (R * S,) labels and
    (R, B, S) weights (S = height * width)."""
    num, _, spatial = rois.shape
    images = rois[:, 0, :].reshape(-1).astype(np.int64)  # static_cast<int>
    order = np.argsort(-loss.reshape(-1), kind="stable")
    left = np.full(int(images.max()) + 1 if images.size else 0, roi_per_img)
    top_labels = np.full(num * spatial, float(ignore_label), dtype=np.float32)
    top_weights = np.zeros_like(weights)
    for index in order:
        image = images[index]
        if left[image] > 0:
            left[image] -= 1
            top_labels[index] = labels.reshape(-1)[index]
            n, s = divmod(int(index), spatial)
            top_weights[n, :, s] = weights[n, :, s]
    return top_labels, top_weights


class CaffeBoxAnnotatorOHEM(nn.Module):
    def __init__(self, roi_per_img: int, ignore_label: int) -> None:
        super().__init__()
        self.roi_per_img = roi_per_img
        self.ignore_label = ignore_label

    def forward(
        self, rois: torch.Tensor, loss: torch.Tensor, labels: torch.Tensor,
        weights: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        n, _, h, w = legacy_4d(tuple(rois.shape))
        bn, bc, _, _ = legacy_4d(tuple(weights.shape))
        if rois.device.type == "meta":
            return rois.new_empty((n, 1, h, w)), weights.new_empty((bn, bc, h, w))

        def host(t: torch.Tensor) -> np.ndarray:
            return t.detach().to("cpu", torch.float32).numpy()

        top_labels, top_weights = annotate_ohem(
            host(rois).reshape(n, 5, h * w), host(loss), host(labels),
            host(weights).reshape(bn, bc, h * w), self.roi_per_img, self.ignore_label,
        )
        out_labels = torch.from_numpy(top_labels.reshape(n, 1, h, w)).to(rois.device)
        out_weights = torch.from_numpy(top_weights.reshape(bn, bc, h, w)).to(rois.device)
        return out_labels, out_weights

    def extra_repr(self) -> str:
        return f"roi_per_img={self.roi_per_img}, ignore_label={self.ignore_label}"


@register_layer("BoxAnnotatorOHEM", param="box_annotator_ohem_param", bottoms=4, tops=2)
def build_box_annotator_ohem(ctx: BuildContext) -> nn.Module:
    p = ctx.param
    if not p.HasField("roi_per_img") or p.roi_per_img <= 0:
        raise ctx.error("box_annotator_ohem_param needs roi_per_img > 0")
    rois, _, labels, weights = (legacy_4d(s) for s in ctx.bottom_shapes)
    if rois[1] != 5:
        raise ctx.error(f"the ROI bottom must have 5 channels, got {list(ctx.bottom_shapes[0])}")
    for name, shape in (("labels", labels), ("weights", weights)):
        if shape[0] != rois[0] or shape[2:] != rois[2:]:
            raise ctx.error(f"the {name} bottom must have one entry per ROI")
    if math.prod(ctx.bottom_shapes[1]) != rois[0] * rois[2] * rois[3]:
        raise ctx.error("the loss bottom must hold one value per ROI")
    return CaffeBoxAnnotatorOHEM(int(p.roi_per_img), int(p.ignore_label))


# -------------------------------------------------------------------------------- FocalLoss


class _FocalLossFunction(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: Any, logits: torch.Tensor, labels: torch.Tensor, axis: int,
        ignore_label: int | None, mode: int, alpha: float, gamma: float,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        prob = torch.softmax(logits, dim=axis)
        p, safe, valid = labelled(prob, labels, axis, ignore_label)
        outer, inner = p.shape[0], p.shape[2]
        p_t = p.gather(1, safe).squeeze(1)
        log_p = torch.log(torch.clamp(p_t, min=FLT_MIN))
        power = alpha * torch.pow(1.0 - p_t, gamma)
        terms = torch.where(valid, -power * log_p, torch.zeros_like(p_t))
        norm = loss_normalizer(mode, outer, inner, valid.sum())
        ctx.save_for_backward(p, safe, valid, p_t, log_p, power)
        ctx.norm, ctx.gamma, ctx.shape = norm, gamma, prob.shape
        ctx.mark_non_differentiable(prob)
        return terms.sum() / norm, prob

    @staticmethod
    def backward(
        ctx: Any, grad: torch.Tensor, _grad_prob: torch.Tensor | None
    ) -> tuple[torch.Tensor | None, ...]:
        p, safe, valid, p_t, log_p, power = ctx.saved_tensors
        g = -ctx.gamma * power / torch.clamp(1.0 - p_t, min=1e-10) * log_p * p_t + power
        diff = p.clone()
        diff.scatter_add_(1, safe, -torch.ones_like(safe, dtype=p.dtype))
        diff = diff * (g * valid.to(p.dtype)).unsqueeze(1) * (grad / ctx.norm)
        return diff.reshape(ctx.shape), None, None, None, None, None, None


class CaffeFocalLoss(nn.Module):
    def __init__(
        self, axis: int, ignore_label: int | None, mode: int, alpha: float, gamma: float,
        num_tops: int,
    ) -> None:
        super().__init__()
        self.axis = axis
        self.ignore_label = ignore_label
        self.normalization = mode
        self.alpha = alpha
        self.gamma = gamma
        self.num_tops = num_tops

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> Any:
        loss, prob = _FocalLossFunction.apply(
            logits, labels, self.axis, self.ignore_label, self.normalization, self.alpha,
            self.gamma,
        )
        return loss if self.num_tops == 1 else (loss, prob)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}, gamma={self.gamma}, axis={self.axis}"


@register_layer("FocalLoss", param="focal_loss_param", bottoms=2, tops=(1, 2), loss=True)
def build_focal_loss(ctx: BuildContext) -> nn.Module:
    p = ctx.param
    if p.type != caffe_pb2.FocalLossParameter.ORIGIN:
        raise ctx.error(
            "focal_loss_param type LINEAR is not implemented by the softmax FocalLoss layer "
            "of the Caffe forks",
            hint="use type: ORIGIN (the default)",
        )
    if p.gamma < 0:
        raise ctx.error(f"gamma must be >= 0, got {p.gamma}")
    if p.alpha <= 0:
        raise ctx.error(f"alpha must be > 0, got {p.alpha}")
    _check_first_dims(ctx)
    axis = _axis_of(ctx, ctx.layer.softmax_param.axis)
    _check_label_count(ctx, axis, "softmax")
    lp = ctx.layer.loss_param
    return CaffeFocalLoss(
        axis, _ignore_label(lp), normalization_mode(lp), float(f32(p.alpha)),
        float(f32(p.gamma)), ctx.num_tops,
    )
