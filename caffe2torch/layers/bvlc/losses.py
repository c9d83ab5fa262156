"""Caffe's loss layers and Accuracy, with Caffe's forward and backward numerics.

Every loss top is a 0-d tensor. The loss weight is not applied here: the net multiplies each
top by its ``loss_weight`` (Caffe's LossLayer gives top 0 a weight of 1 by default). Labels,
targets and infogain matrices never receive gradients (Caffe LOG(FATAL)s when asked to).
Where Caffe's hand-written gradient differs from the derivative of its forward (clamped logs,
ignored entries, ContrastiveLoss's ``dist + 1e-4``) a custom ``autograd.Function`` computes
Caffe's gradient; EuclideanLoss and HingeLoss use autograd, whose gradient equals Caffe's.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from caffe2torch.layers.emit import Emit, emitter, num
from caffe2torch.layers.portable import portable
from caffe2torch.layers.registry import BuildContext, register_layer
from caffe2torch.numerics import as_f32
from caffe2torch.proto import caffe_pb2

# Caffe clamps log() arguments: SoftmaxWithLoss at FLT_MIN, the others at kLOG_THRESHOLD.
FLT_MIN = float(np.finfo(np.float32).tiny)
LOG_THRESHOLD = 1e-20

FULL = caffe_pb2.LossParameter.FULL
VALID = caffe_pb2.LossParameter.VALID
BATCH_SIZE = caffe_pb2.LossParameter.BATCH_SIZE
NONE = caffe_pb2.LossParameter.NONE


# --------------------------------------------------------------------------- helpers


def normalization_mode(loss_param: Any, default: int = VALID) -> int:
    """Caffe's choice of NormalizationMode: ``normalization`` when given, else the deprecated
    ``normalize`` (true -> VALID, false -> BATCH_SIZE), else the layer's default (VALID for
    SoftmaxWithLoss and InfogainLoss, BATCH_SIZE for SigmoidCrossEntropyLoss)."""
    if loss_param.HasField("normalization"):
        return int(loss_param.normalization)
    if loss_param.HasField("normalize"):
        return VALID if loss_param.normalize else BATCH_SIZE
    return default


def loss_normalizer(
    mode: int, outer: int, inner: int, valid_count: torch.Tensor | None = None
) -> torch.Tensor | float:
    """caffe_normalizer for a LossParameter.NormalizationMode value."""
    return caffe_normalizer(mode_name(mode), outer, inner, valid_count)


def mode_name(mode: int) -> str:
    """The NormalizationMode's name ("VALID"), or the number for an unknown one."""
    names = caffe_pb2.LossParameter.NormalizationMode
    return names.Name(mode) if mode in names.values() else str(mode)


@portable
def caffe_normalizer(
    mode: str, outer: int, inner: int, valid_count: torch.Tensor | None = None
) -> torch.Tensor | float:
    """Caffe's ``get_normalizer``: the divisor of the summed loss, never below 1. FULL counts
    every entry, VALID the ``valid_count`` entries not ignored (every entry without it, as
    Caffe does when no ignore_label is set), BATCH_SIZE the outer count, NONE is 1."""
    if mode == "FULL":
        return float(max(1, outer * inner))
    if mode == "VALID":
        if valid_count is None:
            return float(max(1, outer * inner))
        return torch.clamp(valid_count.to(torch.float32), min=1.0)
    if mode == "BATCH_SIZE":
        return float(max(1, outer))
    if mode == "NONE":
        return 1.0
    raise ValueError(f"unknown normalization mode {mode}")


def canonical_axis(axis: int, num_axes: int) -> int:
    """Caffe's CanonicalAxisIndex: negative axes count from the end."""
    return axis + num_axes if axis < 0 else axis


@portable
def _label_index(labels: torch.Tensor) -> torch.Tensor:
    # Caffe reads labels with static_cast<int>: truncation toward zero.
    return labels.detach().to(torch.int64)


@portable
def _valid_mask(labels: torch.Tensor, ignore_label: int | None) -> torch.Tensor:
    if ignore_label is None:
        return torch.ones_like(labels, dtype=torch.bool)
    return labels != ignore_label


@portable
def _split_axis(shape: tuple[int, ...], axis: int) -> tuple[int, int, int]:
    """(outer, channels, inner) counts around ``axis``."""
    return math.prod(shape[:axis]), shape[axis], math.prod(shape[axis + 1 :])


def _loss_param(ctx: BuildContext) -> Any:
    return ctx.layer.loss_param


def _ignore_label(loss_param: Any) -> int | None:
    return int(loss_param.ignore_label) if loss_param.HasField("ignore_label") else None


def _check_first_dims(ctx: BuildContext) -> None:
    # LossLayer::Reshape: data and label share their first dimension.
    shapes = ctx.bottom_shapes
    if len(shapes) >= 2 and shapes[0] and shapes[1] and shapes[0][0] != shapes[1][0]:
        raise ctx.error(
            f"bottoms '{ctx.layer.bottom[0]}' {list(shapes[0])} and '{ctx.layer.bottom[1]}' "
            f"{list(shapes[1])} must have the same first dimension"
        )


def _check_label_count(ctx: BuildContext, axis: int, what: str) -> None:
    shape = ctx.bottom_shapes[0]
    outer, _, inner = _split_axis(shape, axis)
    count = math.prod(ctx.bottom_shapes[1])
    if outer * inner != count:
        raise ctx.error(
            f"{count} labels for {outer * inner} predictions (shape {list(shape)}, {what} "
            f"axis {axis})",
            hint=f"the label count must be the product of the prediction dims except the "
            f"{what} axis",
        )


def _axis_of(ctx: BuildContext, axis: int) -> int:
    num_axes = len(ctx.bottom_shapes[0])
    canonical = canonical_axis(axis, num_axes)
    if not 0 <= canonical < num_axes:
        raise ctx.error(f"axis {axis} is out of range for a {num_axes}-axis bottom")
    return canonical


# --------------------------------------------------------------------------- SoftmaxWithLoss


@portable
def labelled(
    scores: torch.Tensor, labels: torch.Tensor, axis: int, ignore_label: int | None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-class ``scores`` over ``axis`` and their labels as Caffe's losses read them:
    (scores as (outer, C, inner), int(label) as (outer, 1, inner) with ignored entries at 0,
    the mask of the entries not ignored (outer, inner))."""
    outer, channels, inner = _split_axis(tuple(scores.shape), axis)
    lab = _label_index(labels).reshape(outer, inner)
    valid = _valid_mask(lab, ignore_label)
    safe = torch.where(valid, lab, torch.zeros_like(lab)).unsqueeze(1)
    return scores.reshape(outer, channels, inner), safe, valid


@portable
def softmax_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    weights: torch.Tensor | None,
    axis: int,
    ignore_label: int | None,
    mode: str,
    clamp: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor,
           torch.Tensor | float]:
    """Caffe's SoftmaxWithLoss forward, and InfogainLoss's with the matrix ``weights`` H:
    p = softmax over ``axis``; an entry costs -log(max(p[label], clamp)) (InfogainLoss:
    -sum_l H[label, l] log(max(p[l], clamp))), 0 where int(label) is ``ignore_label``; the
    sum is divided by caffe_normalizer. Returns (loss, prob, p, safe labels, valid, norm)."""
    prob = torch.softmax(logits, dim=axis)
    p, safe, valid = labelled(prob, labels, axis, ignore_label)
    outer, inner = p.shape[0], p.shape[2]
    if weights is None:
        # SoftmaxWithLoss: -log p[label]
        terms = -torch.log(torch.clamp(p.gather(1, safe).squeeze(1), min=clamp))
    else:
        # InfogainLoss: -sum_l H[label, l] log p[l]
        rows = weights[safe.squeeze(1)].permute(0, 2, 1)  # (outer, C, inner)
        terms = -(rows * torch.log(torch.clamp(p, min=clamp))).sum(dim=1)
    terms = torch.where(valid, terms, torch.zeros_like(terms))
    norm = caffe_normalizer(mode, outer, inner, valid.sum())
    return terms.sum() / norm, prob, p, safe, valid, norm


class _SoftmaxLossFunction(torch.autograd.Function):
    """Softmax over ``axis``, then -log(max(p[label], clamp)) (or the infogain-weighted sum)
    over non-ignored entries / normalizer. Returns (loss, prob). Gradient w.r.t. the logits:
    Caffe's hand-written (p - 1[label]) (infogain: p * rowsum(H)[label] - H[label]) on
    non-ignored entries only, even where p was clamped; the prob output gets no gradient."""

    @staticmethod
    def forward(
        ctx: Any,
        logits: torch.Tensor,
        labels: torch.Tensor,
        weights: torch.Tensor | None,
        axis: int,
        ignore_label: int | None,
        mode: int,
        clamp: float,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        loss, prob, p, safe, valid, norm = softmax_loss(
            logits, labels, weights, axis, ignore_label, mode_name(mode), clamp
        )
        ctx.save_for_backward(p, safe, valid, weights)
        ctx.norm = norm
        ctx.shape = prob.shape
        ctx.mark_non_differentiable(prob)
        return loss, prob

    @staticmethod
    def backward(
        ctx: Any, grad: torch.Tensor, _grad_prob: torch.Tensor | None
    ) -> tuple[torch.Tensor | None, ...]:
        p, safe, valid, weights = ctx.saved_tensors
        if weights is None:
            diff = p.clone()
            diff.scatter_add_(1, safe, -torch.ones_like(safe, dtype=p.dtype))
        else:
            # Caffe: p[l] * sum_k H[label, k] - H[label, l]
            row_sums = weights.sum(dim=1)[safe]  # (outer, 1, inner)
            rows = weights[safe.squeeze(1)].permute(0, 2, 1)
            diff = p * row_sums - rows
        diff = diff * valid.unsqueeze(1).to(p.dtype)
        diff = diff * (grad / ctx.norm)
        return diff.reshape(ctx.shape), None, None, None, None, None, None


class CaffeSoftmaxWithLoss(nn.Module):
    """SoftmaxWithLoss: softmax over ``axis`` then multinomial logistic loss; optional second
    top ``prob`` (Caffe's backward ignores its diff)."""

    def __init__(self, axis: int, ignore_label: int | None, mode: int, num_tops: int,
                 class_weights: torch.Tensor | None = None) -> None:
        super().__init__()
        self.axis = axis
        self.ignore_label = ignore_label
        self.normalization = mode
        self.num_tops = num_tops
        # SegNet's weight_by_label_freqs: loss -w[label] log p[label], gradient w[label] (p -
        # 1[label]): the infogain rule with H = diag(w)
        self.class_weights: torch.Tensor | None
        self.register_buffer("class_weights", None if class_weights is None
                             else torch.diag(class_weights), persistent=False)

    def forward(
        self, logits: torch.Tensor, labels: torch.Tensor
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        loss, prob = _SoftmaxLossFunction.apply(
            logits, labels, self.class_weights, self.axis, self.ignore_label,
            self.normalization, FLT_MIN,
        )
        if self.num_tops == 1:
            return loss
        return loss, prob


@register_layer(
    "SoftmaxWithLoss",
    param="softmax_param",
    bottoms=2,
    tops=(1, 3),
    aliases=("SOFTMAX_LOSS", "softmax_loss"),
    loss=True,
)
def build_softmax_with_loss(ctx: BuildContext) -> nn.Module:
    _check_first_dims(ctx)
    axis = _axis_of(ctx, ctx.layer.softmax_param.axis)
    _check_label_count(ctx, axis, "softmax")
    lp = _loss_param(ctx)
    ignore = _ignore_label(lp)
    if ignore is None:
        ignore = _deeplab_v1_ignore_label(ctx)
    if ctx.num_tops == 3:  # R-FCN's caffe: a third top, the per-item loss (as its OHEM type)
        from caffe2torch.layers.forks.losses import CaffeSoftmaxWithLossOHEM

        return CaffeSoftmaxWithLossOHEM(axis, ignore, normalization_mode(lp), 3)
    return CaffeSoftmaxWithLoss(axis, ignore, normalization_mode(lp), ctx.num_tops,
                                _segnet_class_weights(ctx, axis))


def _deeplab_v1_ignore_label(ctx: BuildContext) -> int | None:
    """DeepLab v1's V1 nets (DeepLab-LargeFOV's train.prototxt) give SOFTMAX_LOSS its
    ignore_label in a ``softmaxloss_param`` block (caffe-deeplab's; kept aside by the
    reader). Its per-class ``weight_source`` is not reproduced: refused by name."""
    block = ctx.extra_field("softmaxloss_param")
    if block is None:
        return None
    if not isinstance(block, dict) or set(block) - {"ignore_label"}:
        other = sorted(set(block) - {"ignore_label"}) if isinstance(block, dict) else [block]
        raise ctx.error(f"softmaxloss_param (DeepLab v1's) sets {other}, which caffe2torch "
                        "does not reproduce", hint="only its ignore_label is read; remove "
                        "the rest (weight_source: per-class loss weights)")
    value = block.get("ignore_label")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ctx.error(f"softmaxloss_param.ignore_label must be an integer, got {value!r}")
    return int(value)


def _segnet_class_weights(ctx: BuildContext, axis: int) -> torch.Tensor | None:
    """alexgkendall/caffe-segnet's loss_param ``weight_by_label_freqs`` and
    ``class_weighting`` (one weight per class; kept fields or the fork's schema)."""
    on = ctx.extra_field("loss_param.weight_by_label_freqs", False)
    weights = ctx.extra_field("loss_param.class_weighting", [])
    if not on:
        return None
    weights = weights if isinstance(weights, list) else [weights]
    channels = ctx.bottom_shapes[0][axis]
    if len(weights) != channels:
        raise ctx.error(f"weight_by_label_freqs needs one class_weighting per class "
                        f"({channels}), got {len(weights)}")
    return torch.tensor([as_f32(w) for w in weights], dtype=torch.float32)


# --------------------------------------------------------------------------- InfogainLoss


def read_infogain_matrix(path: str, ctx: BuildContext) -> torch.Tensor:
    """The infogain matrix H of a ``.binaryproto`` BlobProto (shape or legacy 4-D dims)."""
    file = Path(path)
    try:
        data = file.read_bytes()
    except OSError as exc:
        raise ctx.error(
            f"cannot read infogain_loss_param source '{path}': {exc.strerror}",
            hint="the path is relative to the working directory, as in Caffe",
        ) from exc
    blob = caffe_pb2.BlobProto()
    try:
        blob.ParseFromString(data)
    except Exception as exc:  # protobuf's DecodeError
        raise ctx.error(f"'{path}' is not a BlobProto (.binaryproto)") from exc
    values = np.asarray(blob.double_data if len(blob.double_data) else blob.data, np.float32)
    return torch.from_numpy(values.copy())


class CaffeInfogainLoss(nn.Module):
    """InfogainLoss: softmax over ``axis`` of bottom 0 (it takes logits), then
    -sum_l H[label, l] log max(p_l, 1e-20); H from a third bottom or from ``source``."""

    infogain: torch.Tensor

    def __init__(
        self,
        axis: int,
        ignore_label: int | None,
        mode: int,
        num_tops: int,
        infogain: torch.Tensor | None,
    ) -> None:
        super().__init__()
        self.axis = axis
        self.ignore_label = ignore_label
        self.normalization = mode
        self.num_tops = num_tops
        # Not a Caffe param blob (Caffe never saves it): a buffer that follows the device.
        self.register_buffer(
            "infogain", infogain if infogain is not None else torch.empty(0), persistent=False
        )
        self.from_source = infogain is not None

    def forward(
        self, logits: torch.Tensor, labels: torch.Tensor, *extra: torch.Tensor
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        channels = logits.shape[self.axis]
        h = extra[0] if extra else self.infogain
        h = h.detach().to(logits.dtype).reshape(channels, channels)
        loss, prob = _SoftmaxLossFunction.apply(
            logits, labels, h, self.axis, self.ignore_label, self.normalization, LOG_THRESHOLD
        )
        if self.num_tops == 1:
            return loss
        return loss, prob


@register_layer(
    "InfogainLoss",
    param="infogain_loss_param",
    bottoms=(2, 3),
    tops=(1, 2),
    aliases=("INFOGAIN_LOSS", "infogain_loss"),
    loss=True,
)
def build_infogain_loss(ctx: BuildContext) -> nn.Module:
    _check_first_dims(ctx)
    param = ctx.layer.infogain_loss_param
    lp = _loss_param(ctx)
    if lp.HasField("normalize"):
        # InfogainLossLayer::LayerSetUp CHECKs this.
        raise ctx.error(
            "loss_param.normalize is not accepted by InfogainLoss",
            hint="use loss_param { normalization: VALID } (or FULL, BATCH_SIZE, NONE)",
        )
    axis = _axis_of(ctx, param.axis)
    _check_label_count(ctx, axis, "infogain")
    channels = ctx.bottom_shapes[0][axis]
    infogain = None
    if len(ctx.bottom_shapes) < 3:
        if not param.source:
            raise ctx.error(
                "no infogain matrix: give a third bottom H or infogain_loss_param.source",
            )
        infogain = read_infogain_matrix(param.source, ctx)
        count = infogain.numel()
    else:
        count = math.prod(ctx.bottom_shapes[2])
    if count != channels * channels:
        raise ctx.error(
            f"the infogain matrix has {count} values; {channels} labels need {channels}x{channels}"
        )
    return CaffeInfogainLoss(
        axis, _ignore_label(lp), normalization_mode(lp), ctx.num_tops, infogain
    )


# ------------------------------------------------------------------ SigmoidCrossEntropyLoss


def _caffe_sigmoid(x: torch.Tensor) -> torch.Tensor:
    # SigmoidLayer: 0.5 * tanh(0.5 x) + 0.5
    return 0.5 * torch.tanh(0.5 * x) + 0.5


@portable
def sigmoid_cross_entropy(
    x: torch.Tensor, target: torch.Tensor, ignore_label: int | None, mode: str
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | float]:
    """Caffe's SigmoidCrossEntropyLoss forward in its stable form: -sum(x (t - [x >= 0]) -
    log(1 + exp(x - 2 x [x >= 0]))) over the entries whose int(t) is not ``ignore_label``,
    divided by caffe_normalizer. Returns (loss, t, valid, norm)."""
    t = target.detach().reshape(x.shape).to(x.dtype)
    valid = _valid_mask(_label_index(t), ignore_label)
    pos = (x >= 0).to(x.dtype)
    terms = x * (t - pos) - torch.log(1 + torch.exp(x - 2 * x * pos))
    terms = torch.where(valid, terms, torch.zeros_like(terms))
    outer = x.shape[0] if x.dim() else 1
    norm = caffe_normalizer(mode, outer, x.numel() // max(outer, 1), valid.sum())
    return -terms.sum() / norm, t, valid, norm


class _SigmoidCrossEntropyFunction(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: Any,
        x: torch.Tensor,
        target: torch.Tensor,
        ignore_label: int | None,
        mode: int,
    ) -> torch.Tensor:
        loss, t, valid, norm = sigmoid_cross_entropy(x, target, ignore_label, mode_name(mode))
        ctx.save_for_backward(x, t, valid)
        ctx.norm = norm
        return loss

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        x, t, valid = ctx.saved_tensors
        diff = (_caffe_sigmoid(x) - t) * valid.to(x.dtype)
        return diff * (grad / ctx.norm), None, None, None


class CaffeSigmoidCrossEntropyLoss(nn.Module):
    """SigmoidCrossEntropyLoss: default normalization BATCH_SIZE; entries whose
    int(target) == ignore_label are skipped."""

    def __init__(self, ignore_label: int | None, mode: int) -> None:
        super().__init__()
        self.ignore_label = ignore_label
        self.normalization = mode

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return _SigmoidCrossEntropyFunction.apply(
            logits, target, self.ignore_label, self.normalization
        )


@register_layer(
    "SigmoidCrossEntropyLoss",
    param="loss_param",
    bottoms=2,
    aliases=("SIGMOID_CROSS_ENTROPY_LOSS",),
    loss=True,
)
def build_sigmoid_cross_entropy_loss(ctx: BuildContext) -> nn.Module:
    _check_first_dims(ctx)
    a, b = (math.prod(s) for s in ctx.bottom_shapes)
    if a != b:
        raise ctx.error(f"inputs must have the same count ({a} vs {b})")
    lp = _loss_param(ctx)
    return CaffeSigmoidCrossEntropyLoss(_ignore_label(lp), normalization_mode(lp, BATCH_SIZE))


# --------------------------------------------------------------------------- EuclideanLoss


class CaffeEuclideanLoss(nn.Module):
    """EuclideanLoss: sum((a - b)^2) / N / 2; both bottoms get gradients (autograd equals
    Caffe's +-diff / N)."""

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return euclidean_loss(a, b)


@portable
def euclidean_loss(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Caffe's EuclideanLoss: sum((a - b)^2) / N / 2."""
    diff = a - b.reshape(a.shape)
    return (diff * diff).sum() / a.shape[0] / 2


@register_layer(
    "EuclideanLoss",
    param="loss_param",
    bottoms=2,
    aliases=("EUCLIDEAN_LOSS", "euclidean_loss"),
    loss=True,
)
def build_euclidean_loss(ctx: BuildContext) -> nn.Module:
    _check_first_dims(ctx)
    a, b = (math.prod(s[1:]) for s in ctx.bottom_shapes)
    if a != b:
        raise ctx.error(f"inputs must have the same dimension ({a} vs {b} per item)")
    return CaffeEuclideanLoss()


# --------------------------------------------------------------------------- HingeLoss


class CaffeHingeLoss(nn.Module):
    """HingeLoss: t_k = max(0, 1 + s_k x_k) with s = -1 at the label, +1 elsewhere (per item of
    dim = count / N); L1 sums t, L2 sums t^2; divided by N. Autograd's gradient equals Caffe's
    (0 where t == 0)."""

    def __init__(self, squared: bool) -> None:
        super().__init__()
        self.squared = squared

    def forward(self, scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return hinge_loss(scores, labels, self.squared)


@portable
def hinge_loss(scores: torch.Tensor, labels: torch.Tensor, squared: bool) -> torch.Tensor:
    """Caffe's HingeLoss: t_k = max(0, 1 + s_k x_k) with s = -1 at the label and +1
    elsewhere; L1 sums t, L2 (``squared``) sums t^2; divided by the batch size."""
    num = scores.shape[0]
    x = scores.reshape(num, -1)
    lab = _label_index(labels).reshape(num, 1)
    sign = torch.ones_like(x).scatter(1, lab, -1.0)
    margin = torch.relu(1 + sign * x)
    total = (margin * margin).sum() if squared else margin.sum()
    return total / num


@register_layer(
    "HingeLoss",
    param="hinge_loss_param",
    bottoms=2,
    aliases=("HINGE_LOSS",),
    loss=True,
)
def build_hinge_loss(ctx: BuildContext) -> nn.Module:
    _check_first_dims(ctx)
    return CaffeHingeLoss(ctx.param.norm == caffe_pb2.HingeLossParameter.L2)


# ------------------------------------------------------------------ MultinomialLogisticLoss


@portable
def multinomial_logistic_loss(
    prob: torch.Tensor, labels: torch.Tensor, clamp: float = 1e-20
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Caffe's MultinomialLogisticLoss over probabilities: -sum log(max(p[label], clamp)) / N.
    Returns (loss, the clamped p[label], the labels)."""
    num = prob.shape[0]
    p = prob.reshape(num, -1)
    lab = _label_index(labels).reshape(num, 1)
    picked = torch.clamp(p.gather(1, lab), min=clamp)
    return -torch.log(picked).sum() / num, picked, lab


class _MultinomialLogisticFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, prob: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        loss, picked, lab = multinomial_logistic_loss(prob, labels, LOG_THRESHOLD)
        ctx.save_for_backward(picked, lab)
        ctx.shape = prob.shape
        return loss

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        picked, lab = ctx.saved_tensors
        num = ctx.shape[0]
        # Caffe: -loss_weight / N / max(p[label], 1e-20) at the label, 0 elsewhere.
        diff = torch.zeros(
            (num, math.prod(ctx.shape) // num), dtype=picked.dtype, device=picked.device
        )
        diff.scatter_(1, lab, (-grad / num) / picked)
        return diff.reshape(ctx.shape), None


class CaffeMultinomialLogisticLoss(nn.Module):
    """MultinomialLogisticLoss: -log(max(p[label], 1e-20)) / N over probabilities."""

    def forward(self, prob: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return _MultinomialLogisticFunction.apply(prob, labels)


@register_layer(
    "MultinomialLogisticLoss",
    param="loss_param",
    bottoms=2,
    aliases=("MULTINOMIAL_LOGISTIC_LOSS", "multinomial_logistic_loss"),
    loss=True,
)
def build_multinomial_logistic_loss(ctx: BuildContext) -> nn.Module:
    _check_first_dims(ctx)
    label_shape = ctx.bottom_shapes[1]
    if math.prod(label_shape[1:]) != 1:
        raise ctx.error(f"the label bottom must hold one value per item, got {list(label_shape)}")
    return CaffeMultinomialLogisticLoss()


# --------------------------------------------------------------------------- ContrastiveLoss


@portable
def contrastive_loss(
    a: torch.Tensor, b: torch.Tensor, sim: torch.Tensor, margin: float, legacy: bool
) -> tuple[torch.Tensor, ...]:
    """Caffe's ContrastiveLoss forward: 1/(2N) sum[y d^2 + (1 - y) max(margin - d, 0)^2]
    (``legacy``: max(margin - d^2, 0)), y = int(sim) != 0. Returns (loss, a - b, d^2, y)."""
    num = a.shape[0]
    diff = a.reshape(num, -1) - b.reshape(num, -1)
    dist_sq = (diff * diff).sum(dim=1)
    similar = _label_index(sim).reshape(num) != 0
    if legacy:
        dissimilar = torch.clamp(margin - dist_sq, min=0.0)
    else:
        dissimilar = torch.clamp(margin - torch.sqrt(dist_sq), min=0.0) ** 2
    loss = torch.where(similar, dist_sq, dissimilar).sum() / num / 2
    return loss, diff, dist_sq, similar


class _ContrastiveFunction(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: Any,
        a: torch.Tensor,
        b: torch.Tensor,
        sim: torch.Tensor,
        margin: float,
        legacy: bool,
    ) -> torch.Tensor:
        loss, diff, dist_sq, similar = contrastive_loss(a, b, sim, margin, legacy)
        ctx.save_for_backward(diff, dist_sq, similar)
        ctx.margin, ctx.legacy, ctx.shapes = margin, legacy, (a.shape, b.shape)
        return loss

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        diff, dist_sq, similar = ctx.saved_tensors
        alpha = grad / diff.shape[0]
        if ctx.legacy:
            mdist = ctx.margin - dist_sq
            beta = -alpha * torch.ones_like(dist_sq)
        else:
            # Caffe divides by dist + 1e-4, not dist.
            dist = torch.sqrt(dist_sq)
            mdist = ctx.margin - dist
            beta = -alpha * mdist / (dist + 1e-4)
        coef = torch.where(
            similar, alpha.expand_as(dist_sq), torch.where(mdist > 0, beta, torch.zeros_like(beta))
        )
        grad_a = coef.unsqueeze(1) * diff
        a_shape, b_shape = ctx.shapes
        a_grad = grad_a.reshape(a_shape) if ctx.needs_input_grad[0] else None
        b_grad = (-grad_a).reshape(b_shape) if ctx.needs_input_grad[1] else None
        return a_grad, b_grad, None, None, None


class CaffeContrastiveLoss(nn.Module):
    """ContrastiveLoss: 1/(2N) sum[y d^2 + (1-y) max(margin - d, 0)^2] (legacy_version:
    max(margin - d^2, 0)), with Caffe's gradient (dissimilar pairs scaled by
    (margin - d) / (d + 1e-4), zero once margin - d <= 0)."""

    def __init__(self, margin: float, legacy: bool) -> None:
        super().__init__()
        self.margin = margin
        self.legacy = legacy

    def forward(self, a: torch.Tensor, b: torch.Tensor, sim: torch.Tensor) -> torch.Tensor:
        return _ContrastiveFunction.apply(a, b, sim, self.margin, self.legacy)


@register_layer(
    "ContrastiveLoss",
    param="contrastive_loss_param",
    bottoms=3,
    aliases=("CONTRASTIVE_LOSS",),
    loss=True,
)
def build_contrastive_loss(ctx: BuildContext) -> nn.Module:
    a, b, sim = ctx.bottom_shapes
    # ContrastiveLossLayer::LayerSetUp: (N, C, 1, 1) features and one label per pair.
    if tuple(a) != tuple(b) or math.prod(a[2:]) != 1:
        raise ctx.error(
            f"the two feature bottoms must both be (N, C[, 1, 1]), got {list(a)} and {list(b)}"
        )
    if not sim or sim[0] != a[0] or math.prod(sim[1:]) != 1:
        raise ctx.error(f"the similarity bottom must hold one value per pair, got {list(sim)}")
    return CaffeContrastiveLoss(float(ctx.param.margin), bool(ctx.param.legacy_version))


# --------------------------------------------------------------------------- Accuracy


class CaffeAccuracy(nn.Module):
    """Accuracy: a sample is right when fewer than ``top_k`` other classes score >= the true
    class (ties count against it); optional second top = per-class accuracy. No gradient."""

    def __init__(self, top_k: int, axis: int, ignore_label: int | None, num_tops: int) -> None:
        super().__init__()
        self.top_k = top_k
        self.axis = axis
        self.ignore_label = ignore_label
        self.num_tops = num_tops

    def forward(
        self, scores: torch.Tensor, labels: torch.Tensor
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        with torch.no_grad():
            accuracy, per_class = caffe_accuracy(
                scores.detach(), labels, self.top_k, self.axis, self.ignore_label,
                self.num_tops > 1,
            )
        if per_class is None:
            return accuracy
        return accuracy, per_class


@portable
def caffe_accuracy(
    scores: torch.Tensor,
    labels: torch.Tensor,
    top_k: int,
    axis: int,
    ignore_label: int | None,
    per_class: bool = True,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Caffe's Accuracy: an entry is right when fewer than ``top_k`` other classes score at
    least as high as its label's (ties count against it); entries labelled ``ignore_label``
    are skipped. Returns (accuracy, per-class accuracy or None without ``per_class``)."""
    s, safe, valid = labelled(scores, labels, axis, ignore_label)
    channels = s.shape[1]
    true_score = s.gather(1, safe)
    better = (s >= true_score).sum(dim=1) - 1  # the true class counts itself
    correct = (better < top_k) & valid
    count = valid.sum().to(scores.dtype)
    hits = correct.sum().to(scores.dtype)
    accuracy = torch.where(count > 0, hits / torch.clamp(count, min=1), 0.0)
    if not per_class:
        return accuracy, None
    zeros = torch.zeros(channels, dtype=scores.dtype, device=scores.device)
    flat = safe.reshape(-1)
    per_total = zeros.index_add(0, flat, valid.reshape(-1).to(scores.dtype))
    per_hits = zeros.index_add(0, flat, correct.reshape(-1).to(scores.dtype))
    return accuracy, torch.where(per_total > 0, per_hits / torch.clamp(per_total, min=1), 0.0)


@register_layer(
    "Accuracy",
    param="accuracy_param",
    bottoms=2,
    tops=(1, 2),
    aliases=("ACCURACY", "accuracy"),
)
def build_accuracy(ctx: BuildContext) -> nn.Module:
    param = ctx.param
    axis = _axis_of(ctx, param.axis)
    _check_label_count(ctx, axis, "label")
    shape = ctx.bottom_shapes[0]
    classes = math.prod(shape) // max(1, math.prod(ctx.bottom_shapes[1]))
    if param.top_k > classes:
        raise ctx.error(f"top_k {param.top_k} is larger than the number of classes ({classes})")
    ignore = int(param.ignore_label) if param.HasField("ignore_label") else None
    return CaffeAccuracy(int(param.top_k), axis, ignore, ctx.num_tops)


# ----------------------------------------------------------------------------- standalone source
# convert's emitters for the module classes above (caffe2torch.layers.emit)
# (kept with keep_losses): each loss is a call of the layer's own forward function, copied
# into the file, giving Caffe's forward value (the unweighted top, as the net reports it).


def _emit_mode(value: int) -> str:
    return repr(caffe_pb2.LossParameter.NormalizationMode.Name(value))


def _emit_bottoms(e: Emit, count: int) -> str:
    return ", ".join(e.bottoms[:count])


@emitter(CaffeSoftmaxWithLoss)
def _emit_softmax_loss(e: Emit) -> list[str]:
    m = e.module
    weights = "None"
    if m.class_weights is not None:  # SegNet's class weights: the infogain rule, H = diag(w)
        weights = e.buffer(m.class_weights, "class_weights")
    args = (f"{_emit_bottoms(e, 2)}, {weights}, {m.axis}, {m.ignore_label}, "
            f"{_emit_mode(m.normalization)}, {num(FLT_MIN)}")
    return e.assign_leading(e.call("softmax_loss", args))


@emitter(CaffeInfogainLoss)
def _emit_infogain_loss(e: Emit) -> list[str]:
    m = e.module
    logits = e.bottoms[0]
    matrix = e.bottoms[2] if len(e.bottoms) > 2 else e.buffer(m.infogain, "infogain")
    matrix = f"{matrix}.reshape({logits}.shape[{m.axis}], -1)"
    args = (f"{_emit_bottoms(e, 2)}, {matrix}, {m.axis}, {m.ignore_label}, "
            f"{_emit_mode(m.normalization)}, {num(LOG_THRESHOLD)}")
    return e.assign_leading(e.call("softmax_loss", args))


@emitter(CaffeSigmoidCrossEntropyLoss)
def _emit_sigmoid_ce(e: Emit) -> list[str]:
    m = e.module
    args = f"{_emit_bottoms(e, 2)}, {m.ignore_label}, {_emit_mode(m.normalization)}"
    return e.assign(f"{e.call('sigmoid_cross_entropy', args)}[0]")


@emitter(CaffeEuclideanLoss)
def _emit_euclidean(e: Emit) -> list[str]:
    return e.assign(e.call("euclidean_loss", _emit_bottoms(e, 2)))


@emitter(CaffeHingeLoss)
def _emit_hinge(e: Emit) -> list[str]:
    return e.assign(e.call("hinge_loss", f"{_emit_bottoms(e, 2)}, {e.module.squared}"))


@emitter(CaffeMultinomialLogisticLoss)
def _emit_multinomial(e: Emit) -> list[str]:
    args = f"{_emit_bottoms(e, 2)}, {num(LOG_THRESHOLD)}"
    return e.assign(f"{e.call('multinomial_logistic_loss', args)}[0]")


@emitter(CaffeContrastiveLoss)
def _emit_contrastive(e: Emit) -> list[str]:
    m = e.module
    args = f"{_emit_bottoms(e, 3)}, {num(m.margin)}, {m.legacy}"
    return e.assign(f"{e.call('contrastive_loss', args)}[0]")


@emitter(CaffeAccuracy)
def _emit_accuracy(e: Emit) -> list[str]:
    m = e.module
    args = f"{_emit_bottoms(e, 2)}, {m.top_k}, {m.axis}, {m.ignore_label}, {len(e.tops) > 1}"
    return e.assign_leading(e.call("caffe_accuracy", args))
