"""Caffe's elementwise ("neuron") layers with Caffe's forward and backward numerics.

Each module maps one bottom to one top of the same shape. Where torch's gradient is Caffe's
(ReLU's negative_slope at x == 0, AbsVal's 0 at x == 0, Clip passing the gradient at both
bounds, Sigmoid's y * (1 - y), TanH's 1 - y^2, BNLL's clamp at 50) autograd is used; Power's
constant case has its own function because Caffe still gives a (zero) gradient there.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from caffe2torch.ir.shapes import same_shape
from caffe2torch.layers.emit import Emit, emitter, num
from caffe2torch.layers.fillers import fill
from caffe2torch.layers.registry import BuildContext, register_layer
from caffe2torch.numerics import as_f32 as _f32


class CaffeReLU(nn.Module):
    """max(x, 0) + negative_slope * min(x, 0); gradient negative_slope at x <= 0."""

    def __init__(self, negative_slope: float = 0.0) -> None:
        super().__init__()
        self.negative_slope = negative_slope

    def forward(self, x: torch.Tensor, inplace: bool = False) -> torch.Tensor:
        if inplace:  # the graph builder checked no one else sees ``x`` (Caffe's in-place)
            return torch.relu_(x) if self.negative_slope == 0.0 else F.leaky_relu_(
                x, self.negative_slope)
        if self.negative_slope == 0.0:
            return torch.relu(x)
        # leaky_relu's backward uses the slope for x <= 0, as Caffe does.
        return F.leaky_relu(x, self.negative_slope)

    def infer_shapes(self, shapes: list[tuple[int, ...]]) -> list[tuple[int, ...]]:
        return [same_shape(shapes)]  # elementwise

    def extra_repr(self) -> str:
        return f"negative_slope={self.negative_slope}"


@register_layer("ReLU", param="relu_param", aliases=("RELU", "relu"))
def build_relu(ctx: BuildContext) -> nn.Module:
    return CaffeReLU(_f32(ctx.param.negative_slope))


class CaffePReLU(nn.Module):
    """ReLU with a learned slope per channel (axis 1) or one shared slope (a 0-axis blob)."""

    def __init__(self, slopes: torch.Tensor) -> None:
        super().__init__()
        self.blobs = nn.ParameterList([nn.Parameter(slopes)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # prelu's gradients are Caffe's: slope * dy for x <= 0, sum(x * dy | x <= 0) for slopes.
        return F.prelu(x, self.blobs[0].reshape(-1))


@register_layer("PReLU", param="prelu_param", blobs=("slope",))
def build_prelu(ctx: BuildContext) -> nn.Module:
    shape = ctx.bottom_shapes[0]
    if len(shape) < 2:
        raise ctx.error(f"the bottom needs at least 2 axes (num, channels), got shape {shape}")
    param = ctx.param
    blob_shape: tuple[int, ...] = () if param.channel_shared else (shape[1],)
    if param.HasField("filler"):
        slopes = fill(param.filler, blob_shape)
    else:
        slopes = torch.full(blob_shape, 0.25)  # Caffe's default: constant 0.25
    return CaffePReLU(slopes)


class CaffeSigmoid(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(x)  # backward dy * y * (1 - y), as Caffe


@register_layer("Sigmoid", param="sigmoid_param", aliases=("SIGMOID", "sigmoid"))
def build_sigmoid(ctx: BuildContext) -> nn.Module:
    return CaffeSigmoid()


class CaffeTanH(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(x)  # backward dy * (1 - y^2), as Caffe


@register_layer("TanH", param="tanh_param", aliases=("TANH", "tanh"))
def build_tanh(ctx: BuildContext) -> nn.Module:
    return CaffeTanH()


class CaffeAbsVal(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.abs(x)  # backward dy * sign(x): 0 at x == 0, as Caffe


@register_layer("AbsVal", aliases=("ABSVAL",))
def build_absval(ctx: BuildContext) -> nn.Module:
    return CaffeAbsVal()


class CaffeBNLL(nn.Module):
    """log(1 + exp(x)); Caffe's gradient clamps x at kBNLL_THRESHOLD = 50."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # softplus: x above the threshold (where log1p(exp(x)) == x in float32), and its
        # backward exp(x) / (exp(x) + 1) below it, 1 above: Caffe's clamped gradient.
        return F.softplus(x, beta=1.0, threshold=50.0)


@register_layer("BNLL", aliases=("bnll",))
def build_bnll(ctx: BuildContext) -> nn.Module:
    return CaffeBNLL()


class CaffeClip(nn.Module):
    """clamp(x, min, max); the gradient passes where min <= x <= max (bounds included)."""

    def __init__(self, low: float, high: float) -> None:
        super().__init__()
        self.low = low
        self.high = high

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # torch.clamp's backward keeps dy where low <= x <= high, exactly Caffe's rule.
        return torch.clamp(x, self.low, self.high)

    def extra_repr(self) -> str:
        return f"min={self.low}, max={self.high}"


@register_layer("Clip", param="clip_param")
def build_clip(ctx: BuildContext) -> nn.Module:
    p = ctx.param
    if p.min > p.max:
        raise ctx.error(f"clip_param min ({p.min}) is greater than max ({p.max})")
    return CaffeClip(_f32(p.min), _f32(p.max))


class CaffeELU(nn.Module):
    """max(x, 0) + alpha * (exp(min(x, 0)) - 1); gradient alpha * exp(x) for x <= 0."""

    def __init__(self, alpha: float) -> None:
        super().__init__()
        self.alpha = alpha

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.elu(x, self.alpha)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}"


@register_layer("ELU", param="elu_param")
def build_elu(ctx: BuildContext) -> nn.Module:
    return CaffeELU(_f32(ctx.param.alpha))


class CaffeExp(nn.Module):
    """y = outer_scale * exp(inner_scale * x): base^(shift + scale * x) (base -1 means e)."""

    def __init__(self, inner_scale: float, outer_scale: float) -> None:
        super().__init__()
        self.inner_scale = inner_scale
        self.outer_scale = outer_scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.exp(x if self.inner_scale == 1.0 else x * self.inner_scale)
        return y if self.outer_scale == 1.0 else y * self.outer_scale

    def extra_repr(self) -> str:
        return f"inner_scale={self.inner_scale}, outer_scale={self.outer_scale}"


def _log_base(ctx: BuildContext, base: float) -> float:
    if base == -1.0:
        return 1.0  # Caffe: base -1 is e, with log(base) = 1 exactly
    if base <= 0:
        raise ctx.error(f"base must be strictly positive (or -1 for e), got {base}")
    return _f32(math.log(base))


@register_layer("Exp", param="exp_param", aliases=("EXP",))
def build_exp(ctx: BuildContext) -> nn.Module:
    p = ctx.param
    base, scale, shift = _f32(p.base), _f32(p.scale), _f32(p.shift)
    log_base = _log_base(ctx, base)
    inner = _f32(log_base * scale)
    # outer = base^shift (e^shift for base -1), exactly 1 without a shift
    outer = 1.0 if shift == 0.0 else _f32(math.exp(shift) if base == -1.0 else base**shift)
    return CaffeExp(inner, outer)


class CaffeLog(nn.Module):
    """y = base_scale * log(shift + scale * x), base_scale = 1 / log(base)."""

    def __init__(self, scale: float, shift: float, base_scale: float) -> None:
        super().__init__()
        self.scale = scale
        self.shift = shift
        self.base_scale = base_scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.scale != 1.0:
            x = x * self.scale
        if self.shift != 0.0:
            x = x + self.shift
        y = torch.log(x)
        return y if self.base_scale == 1.0 else y * self.base_scale

    def extra_repr(self) -> str:
        return f"scale={self.scale}, shift={self.shift}, base_scale={self.base_scale}"


@register_layer("Log", param="log_param")
def build_log(ctx: BuildContext) -> nn.Module:
    p = ctx.param
    log_base = _log_base(ctx, _f32(p.base))
    return CaffeLog(_f32(p.scale), _f32(p.shift), _f32(1.0 / log_base))


class _ConstantLike(torch.autograd.Function):
    """A tensor like ``x`` full of ``value`` whose gradient to ``x`` is zero (Caffe's Power
    with scale or power 0 sets bottom_diff to 0 rather than leaving it untouched)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, value: float) -> torch.Tensor:
        return torch.full_like(x, value)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return torch.zeros_like(grad), None


class CaffePower(nn.Module):
    """y = (shift + scale * x) ^ power."""

    def __init__(self, power: float, scale: float, shift: float) -> None:
        super().__init__()
        self.power = power
        self.scale = scale
        self.shift = shift

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.power * self.scale == 0.0:
            # Caffe: the input is ignored when diff_scale = power * scale is 0.
            value = 1.0 if self.power == 0.0 else _f32(self.shift**self.power)
            if torch.is_grad_enabled() and x.requires_grad:
                return _ConstantLike.apply(x, value)
            return torch.full_like(x, value)
        y = x
        if self.scale != 1.0:
            y = y * self.scale
        if self.shift != 0.0:
            y = y + self.shift
        if self.power != 1.0:
            y = torch.square(y) if self.power == 2.0 else torch.pow(y, self.power)
        return y

    def extra_repr(self) -> str:
        return f"power={self.power}, scale={self.scale}, shift={self.shift}"


@register_layer("Power", param="power_param", aliases=("POWER",))
def build_power(ctx: BuildContext) -> nn.Module:
    p = ctx.param
    return CaffePower(_f32(p.power), _f32(p.scale), _f32(p.shift))


class CaffeSwish(nn.Module):
    """x * sigmoid(beta * x)."""

    def __init__(self, beta: float) -> None:
        super().__init__()
        self.beta = beta

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.beta == 1.0:
            return F.silu(x)
        return x * torch.sigmoid(x * self.beta)

    def extra_repr(self) -> str:
        return f"beta={self.beta}"


@register_layer("Swish", param="swish_param")
def build_swish(ctx: BuildContext) -> nn.Module:
    return CaffeSwish(_f32(ctx.param.beta))


class CaffeThreshold(nn.Module):
    """1 where x > threshold (strictly), else 0. Caffe has no backward: neither does this."""

    def __init__(self, threshold: float) -> None:
        super().__init__()
        self.threshold = threshold

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x.detach() > self.threshold).to(x.dtype)

    def extra_repr(self) -> str:
        return f"threshold={self.threshold}"


@register_layer("Threshold", param="threshold_param", aliases=("THRESHOLD",))
def build_threshold(ctx: BuildContext) -> nn.Module:
    return CaffeThreshold(_f32(ctx.param.threshold))


class CaffeDropout(nn.Module):
    """Caffe's Dropout: TRAIN keeps each value with probability 1 - ratio and multiplies the
    kept ones by 1 / (1 - ratio); TEST is the identity. With a fork's ``scale_train: false``
    TRAIN does not scale and TEST multiplies by 1 - ratio instead. With SegNet's
    ``sample_weights_test: true`` (Bayesian SegNet's Monte Carlo dropout) TEST drops and
    scales as TRAIN does."""

    def __init__(self, ratio: float, scale_train: bool = True,
                 sample_test: bool = False) -> None:
        super().__init__()
        self.ratio = ratio
        self.scale_train = scale_train
        self.sample_test = sample_test

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training or self.sample_test:
            if self.scale_train:
                return F.dropout(x, self.ratio, training=True)
            keep = torch.rand_like(x) >= self.ratio
            return x * keep.to(x.dtype)
        if self.scale_train:
            return x
        return x * (1.0 - self.ratio)

    def extra_repr(self) -> str:
        return f"ratio={self.ratio}, scale_train={self.scale_train}"

    def infer_shapes(self, shapes: list[tuple[int, ...]]) -> list[tuple[int, ...]]:
        return [same_shape(shapes)]  # elementwise


@register_layer("Dropout", param="dropout_param", aliases=("DROPOUT", "dropout"))
def build_dropout(ctx: BuildContext) -> nn.Module:
    p = ctx.param
    ratio = _f32(p.dropout_ratio)
    if not 0.0 <= ratio < 1.0:
        raise ctx.error(f"dropout_ratio must be in [0, 1), got {p.dropout_ratio}")
    scale_train = bool(getattr(p, "scale_train", True))
    sample_test = bool(ctx.extra_field("dropout_param.sample_weights_test", False))
    return CaffeDropout(ratio, scale_train, sample_test)


# ----------------------------------------------------------------------------- standalone source
# convert's emitters for the module classes above (caffe2torch.layers.emit)


@emitter(CaffeReLU)
def _emit_relu(e: Emit) -> list[str]:
    slope = e.module.negative_slope
    x = e.bottoms[0]
    return e.assign(f"F.leaky_relu({x}, {num(slope)})" if slope else f"F.relu({x})")


@emitter(CaffePReLU)
def _emit_prelu(e: Emit) -> list[str]:
    return e.assign(f"F.prelu({e.bottoms[0]}, {e.param(0, 'slope')}.reshape(-1))")


@emitter(CaffeSigmoid)
def _emit_sigmoid(e: Emit) -> list[str]:
    return e.assign(f"torch.sigmoid({e.bottoms[0]})")


@emitter(CaffeTanH)
def _emit_tanh(e: Emit) -> list[str]:
    return e.assign(f"torch.tanh({e.bottoms[0]})")


@emitter(CaffeAbsVal)
def _emit_absval(e: Emit) -> list[str]:
    return e.assign(f"torch.abs({e.bottoms[0]})")


@emitter(CaffeBNLL)
def _emit_bnll(e: Emit) -> list[str]:
    return e.assign(f"F.softplus({e.bottoms[0]}, beta=1.0, threshold=50.0)")


@emitter(CaffeClip)
def _emit_clip(e: Emit) -> list[str]:
    m = e.module
    return e.assign(f"torch.clamp({e.bottoms[0]}, {num(m.low)}, {num(m.high)})")


@emitter(CaffeELU)
def _emit_elu(e: Emit) -> list[str]:
    return e.assign(f"F.elu({e.bottoms[0]}, {num(e.module.alpha)})")


@emitter(CaffeSwish)
def _emit_swish(e: Emit) -> list[str]:
    x, beta = e.bottoms[0], e.module.beta
    return e.assign(f"F.silu({x})" if beta == 1.0 else f"{x} * torch.sigmoid({x} * {num(beta)})")


@emitter(CaffeThreshold)
def _emit_threshold(e: Emit) -> list[str]:
    x = e.bottoms[0]
    return e.assign(f"({x} > {num(e.module.threshold)}).to({x}.dtype)")


@emitter(CaffeDropout)
def _emit_dropout(e: Emit) -> list[str]:
    if e.module.training:
        raise e.unsupported("Dropout in the TRAIN phase")
    x, top = e.bottoms[0], e.tops[0]
    note = f"# {e.layer.name}: Dropout is the identity at test time"
    return [note] if x == top else [note, f"{top} = {x}"]


@emitter(CaffePower)
def _emit_power(e: Emit) -> list[str]:
    m = e.module
    x = e.bottoms[0]
    if m.power * m.scale == 0.0:  # Caffe ignores the input
        value = 1.0 if m.power == 0 else float(m.shift) ** float(m.power)
        return e.assign(f"torch.full_like({x}, {num(value)})")
    y = x if m.scale == 1 else f"{x} * {num(m.scale)}"
    if m.shift != 0:
        y = f"{y} + {num(m.shift)}"
    if m.power == 2:
        y = f"torch.square({y})"
    elif m.power != 1:
        y = f"torch.pow({y}, {num(m.power)})"
    return e.assign(y)


@emitter(CaffeExp)
def _emit_exp(e: Emit) -> list[str]:
    m = e.module
    x = e.bottoms[0]
    y = f"torch.exp({x})" if m.inner_scale == 1 else f"torch.exp({x} * {num(m.inner_scale)})"
    return e.assign(y if m.outer_scale == 1 else f"{y} * {num(m.outer_scale)}")


@emitter(CaffeLog)
def _emit_log(e: Emit) -> list[str]:
    m = e.module
    y = e.bottoms[0]
    if m.scale != 1:
        y = f"{y} * {num(m.scale)}"
    if m.shift != 0:
        y = f"{y} + {num(m.shift)}"
    y = f"torch.log({y})"
    return e.assign(y if m.base_scale == 1 else f"{y} * {num(m.base_scale)}")
