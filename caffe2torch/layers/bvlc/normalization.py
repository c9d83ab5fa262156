"""Caffe's normalisation layers: BatchNorm, Scale, Bias and MVN, with Caffe's numerics.

* BatchNorm keeps three blobs (running mean sum, running variance sum, scale factor) that are
  never learned. With global statistics (the default in the TEST phase) it normalises with
  blob0 / blob2 and blob1 / blob2 (a zero blob2 gives zeros); otherwise with the batch's
  mean and biased variance, and every such forward (also in TEST with
  ``use_global_stats: false``) updates the blobs: blob2 = maf * blob2 + 1, blob0 = maf *
  blob0 + mean, blob1 = maf * blob1 + m / (m - 1) * variance (m values per channel).
* Scale/Bias multiply/add a blob (learned, or the second bottom) broadcast from ``axis``;
  Scale's optional bias is its last blob.
* MVN subtracts the mean and divides by (std + eps) (eps added to the standard deviation);
  its backward is Caffe's formula, which treats the eps-shifted std as the plain std.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from caffe2torch.errors import BuildError
from caffe2torch.ir.shapes import same_shape
from caffe2torch.layers.emit import Emit, emitter, num
from caffe2torch.layers.fillers import make_filled
from caffe2torch.layers.portable import portable
from caffe2torch.layers.registry import BuildContext, Shape, register_layer
from caffe2torch.limits import check_blob
from caffe2torch.numerics import as_f32 as _f32
from caffe2torch.proto import caffe_pb2


def _canonical_axis(ctx: BuildContext, axis: int, num_axes: int) -> int:
    if not -num_axes <= axis < num_axes:
        raise ctx.error(
            f"axis {axis} is out of range for a bottom with {num_axes} axes",
            hint=f"use a value in [{-num_axes}, {num_axes - 1}]",
        )
    return axis + num_axes if axis < 0 else axis


# --------------------------------------------------------------------------- BatchNorm


def scaled_stats(
    mean: torch.Tensor, var: torch.Tensor, factor: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """BatchNorm's global statistics: Caffe's scale_factor = blob2 == 0 ? 0 : 1 / blob2
    times the accumulated mean and variance."""
    mean, var, factor = mean.detach(), var.detach(), factor.detach()
    scale = torch.where(factor == 0, torch.zeros_like(factor), 1.0 / factor)
    return mean * scale, var * scale


class CaffeBatchNorm(nn.Module):
    """Caffe's BatchNorm (no affine part: Caffe puts that in a following Scale layer)."""

    def __init__(
        self,
        channels: int,
        eps: float,
        moving_average_fraction: float,
        use_global_stats: bool | None,
    ) -> None:
        super().__init__()
        self.blobs = nn.ParameterList(
            [
                nn.Parameter(torch.zeros(channels), requires_grad=False),
                nn.Parameter(torch.zeros(channels), requires_grad=False),
                nn.Parameter(torch.zeros(1), requires_grad=False),
            ]
        )
        self.channels = channels
        self.eps = eps
        self.moving_average_fraction = moving_average_fraction
        self.use_global_stats = use_global_stats  # None: Caffe's default, TEST phase -> True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        use_global = not self.training if self.use_global_stats is None else self.use_global_stats
        x2 = x if x.dim() >= 2 else x.reshape(x.shape[0], 1)  # a 1-axis bottom: one channel
        if use_global:
            mean, var = self._global_stats()
            y = F.batch_norm(x2, mean, var, None, None, False, 0.0, self.eps)
        else:
            y = self._batch_stats(x2)
        return y.reshape(x.shape)

    def infer_shapes(self, shapes: list[tuple[int, ...]]) -> list[tuple[int, ...]]:
        return [same_shape(shapes)]  # elementwise

    def _global_stats(self) -> tuple[torch.Tensor, torch.Tensor]:
        blobs = tuple(self.blobs)
        if torch.jit.is_tracing() or torch.compiler.is_compiling():
            return scaled_stats(*blobs)  # in the graph, from the blobs (ONNX names them)
        # The statistics change only when a blob is written (a load, a TRAIN-mode forward
        # of this layer): reuse them until a blob's version counter moves or its storage
        # is replaced (``blob.data = ...`` keeps the version). Writes that move neither
        # (through numpy views) need forget_param_cache(); pycaffe's Net calls it.
        key = tuple((id(b), b._version, b.data_ptr(), b.device, b.dtype) for b in blobs)
        cached = self.__dict__.get("_stats_cache")
        if cached is None or cached[0] != key:
            cached = (key, scaled_stats(*blobs))
            self.__dict__["_stats_cache"] = cached
        return cached[1]

    def forget_param_cache(self) -> None:
        """Drop the cached statistics: for writes to the blobs that leave their version
        counters as they were (numpy views of ``p.data``, as pycaffe hands out)."""
        self.__dict__.pop("_stats_cache", None)

    def _batch_stats(self, x: torch.Tensor) -> torch.Tensor:
        m = x.numel() // max(self.channels, 1)
        if m > 1:
            # momentum 1 makes torch's running buffers the batch mean and the unbiased
            # (m / (m - 1)) variance: exactly what Caffe adds into its blobs.
            batch_mean = torch.zeros(self.channels, dtype=x.dtype, device=x.device)
            batch_var = torch.zeros(self.channels, dtype=x.dtype, device=x.device)
            y = F.batch_norm(x, batch_mean, batch_var, None, None, True, 1.0, self.eps)
        else:
            dims = [d for d in range(x.dim()) if d != 1]
            var, mean = torch.var_mean(x, dim=dims, correction=0, keepdim=True)
            y = (x - mean) / torch.sqrt(var + self.eps)
            batch_mean = mean.detach().reshape(-1)
            batch_var = var.detach().reshape(-1)  # Caffe: correction factor 1 when m == 1
        maf = self.moving_average_fraction
        with torch.no_grad():
            self.blobs[2].mul_(maf).add_(1.0)
            self.blobs[0].mul_(maf).add_(batch_mean)
            self.blobs[1].mul_(maf).add_(batch_var)
        return y

    def extra_repr(self) -> str:
        return (
            f"channels={self.channels}, eps={self.eps}, "
            f"moving_average_fraction={self.moving_average_fraction}, "
            f"use_global_stats={self.use_global_stats}"
        )


@register_layer("BatchNorm", param="batch_norm_param", blobs=("mean", "variance", "scale_factor"))
def build_batch_norm(ctx: BuildContext) -> nn.Module:
    p = ctx.param
    shape = ctx.bottom_shapes[0]
    if not shape:
        raise ctx.error("needs a bottom with at least one axis")
    channels = 1 if len(shape) == 1 else shape[1]
    for i, spec in enumerate(ctx.layer.param):
        if spec.lr_mult != 0:  # Caffe CHECKs lr_mult == 0 (the default is 1)
            raise ctx.error(
                f"param {i} has lr_mult {spec.lr_mult}: batch normalization statistics "
                "cannot be learned",
                hint="remove the param { } blocks or set lr_mult: 0",
            )
    explicit = p.use_global_stats if p.HasField("use_global_stats") else None
    check_blob((channels,))
    return CaffeBatchNorm(channels, _f32(p.eps), _f32(p.moving_average_fraction), explicit)


# --------------------------------------------------------------------------- Scale / Bias


def _spread(t: torch.Tensor, ndim: int, axis: int) -> torch.Tensor:
    """``t`` viewed so it broadcasts against an ``ndim``-D tensor from ``axis`` on."""
    if t.dim() == 0:
        return t
    return t.reshape((*t.shape, *([1] * (ndim - axis - t.dim()))))


def _axis_block(
    ctx: BuildContext, shape: Shape, axis: int, num_axes: int, what: str
) -> tuple[int, Shape]:
    """(canonical axis, blob shape) of a blob covering ``num_axes`` axes from ``axis``."""
    axis = _canonical_axis(ctx, axis, len(shape))
    if num_axes < -1:
        raise ctx.error(f"num_axes must be >= 0, or -1 to extend to the end, got {num_axes}")
    end = len(shape) if num_axes == -1 else axis + num_axes
    if end > len(shape):
        raise ctx.error(
            f"the {what} blob's shape extends past the bottom's shape {tuple(shape)} "
            f"(axis {axis}, num_axes {num_axes})"
        )
    return axis, tuple(shape[axis:end])


def _check_operand(ctx: BuildContext, shape: Shape, other: Shape, axis: int, what: str) -> int:
    """Canonical axis for a second bottom of ``other`` shape, checked like Caffe's Reshape."""
    axis = 0 if len(other) == 0 else _canonical_axis(ctx, axis, len(shape))
    if tuple(shape[axis : axis + len(other)]) != tuple(other) or axis + len(other) > len(shape):
        raise ctx.error(
            f"{what} shape {tuple(other)} does not match bottom[0] shape {tuple(shape)} "
            f"from axis {axis}"
        )
    return axis


class CaffeScale(nn.Module):
    """y = x * scale (+ bias), the scale from blob 0 or from the second bottom."""

    def __init__(
        self,
        axis: int,
        scale: torch.Tensor | None,
        bias: torch.Tensor | None,
        bias_axis: int,
    ) -> None:
        super().__init__()
        blobs = [nn.Parameter(t) for t in (scale, bias) if t is not None]
        self.blobs = nn.ParameterList(blobs)
        self.axis = axis
        self.learned_scale = scale is not None
        self.bias_term = bias is not None
        self.bias_axis = bias_axis

    def can_fold(self, bn: nn.Module) -> bool:
        """Whether this Scale can run fused with ``bn``, the BatchNorm just before it:
        per-channel scale (and bias) over axis 1 of a bottom with at least two axes."""
        if not (isinstance(bn, CaffeBatchNorm) and self.learned_scale and self.axis == 1):
            return False
        shapes = [tuple(b.shape) for b in self.blobs]
        return all(s == (bn.channels,) for s in shapes) and (
            not self.bias_term or self.bias_axis == 1)

    def fold(self, bn: CaffeBatchNorm) -> None:
        """Keep a reference to ``bn`` (not a submodule: the root owns it) for ``forward(x,
        folded=True)``, where ``x`` is the BatchNorm's bottom."""
        self.__dict__["_folded_bn"] = bn

    def _batch_norm_scale(self, x: torch.Tensor) -> torch.Tensor:
        bn = self.__dict__["_folded_bn"]
        use_global = not bn.training if bn.use_global_stats is None else bn.use_global_stats
        if not use_global or x.dim() < 2:
            return self.forward(bn(x))  # batch statistics: BatchNorm updates its blobs
        # With global statistics BatchNorm and Scale are one affine map per channel: one
        # batch_norm call, which keeps only its input for backward (not the normalised
        # copy that a separate Scale's product would keep).
        mean, var = bn._global_stats()
        bias = self.blobs[-1] if self.bias_term else None
        return F.batch_norm(x, mean, var, self.blobs[0], bias, False, 0.0, bn.eps)

    def forward(
        self, x: torch.Tensor, scale: torch.Tensor | None = None, folded: bool = False
    ) -> torch.Tensor:
        if folded:
            return self._batch_norm_scale(x)
        if scale is None:
            scale = self.blobs[0]
        y = x * _spread(scale, x.dim(), self.axis)
        if self.bias_term:
            y = y + _spread(self.blobs[-1], x.dim(), self.bias_axis)
        return y

    def extra_repr(self) -> str:
        return f"axis={self.axis}, learned_scale={self.learned_scale}, bias={self.bias_term}"

    def infer_shapes(self, shapes: list[tuple[int, ...]]) -> list[tuple[int, ...]]:
        return [same_shape(shapes)]  # elementwise


@register_layer("Scale", param="scale_param", bottoms=(1, 2), blobs=("scale", "bias"))
def build_scale(ctx: BuildContext) -> nn.Module:
    p = ctx.param
    shape = ctx.bottom_shapes[0]
    gen = ctx.options.get("generator")
    scale: torch.Tensor | None = None
    if len(ctx.bottom_shapes) == 2:
        other = ctx.bottom_shapes[1]
        axis = _check_operand(ctx, shape, other, p.axis, "scale (bottom[1])")
        bias_axes = len(other)
    else:
        axis, scale_shape = _axis_block(ctx, shape, p.axis, p.num_axes, "scale")
        # Caffe: the scale defaults to a constant 1 filler (identity).
        filler = p.filler if p.HasField("filler") else _UNIT_FILLER
        scale = make_filled(scale_shape, filler, gen)
        if not scale_shape:
            axis = 0
        bias_axes = p.num_axes
    bias = None
    bias_axis = axis
    if p.bias_term:
        bias_axis, bias_shape = _axis_block(ctx, shape, p.axis, bias_axes, "bias")
        if not bias_shape:
            bias_axis = 0
        bias = make_filled(bias_shape, p.bias_filler, gen)
    return CaffeScale(axis, scale, bias, bias_axis)


# ScaleLayer's default filler when none is given: constant 1 (the identity).
_UNIT_FILLER = caffe_pb2.FillerParameter(type="constant", value=1.0)


class CaffeBias(nn.Module):
    """y = x + bias, the bias from blob 0 or from the second bottom."""

    def __init__(self, axis: int, bias: torch.Tensor | None) -> None:
        super().__init__()
        self.blobs = nn.ParameterList([nn.Parameter(bias)] if bias is not None else [])
        self.axis = axis

    def forward(self, x: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
        if bias is None:
            bias = self.blobs[0]
        return x + _spread(bias, x.dim(), self.axis)

    def extra_repr(self) -> str:
        return f"axis={self.axis}, learned={len(self.blobs) > 0}"


@register_layer("Bias", param="bias_param", bottoms=(1, 2), blobs=("bias",))
def build_bias(ctx: BuildContext) -> nn.Module:
    p = ctx.param
    shape = ctx.bottom_shapes[0]
    if len(ctx.bottom_shapes) == 2:
        axis = _check_operand(ctx, shape, ctx.bottom_shapes[1], p.axis, "bias (bottom[1])")
        return CaffeBias(axis, None)
    axis, bias_shape = _axis_block(ctx, shape, p.axis, p.num_axes, "bias")
    bias = make_filled(bias_shape, p.filler, ctx.options.get("generator"))
    return CaffeBias(0 if not bias_shape else axis, bias)


# --------------------------------------------------------------------------- MVN


@portable
def normalized_rows(x: torch.Tensor, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows of ``x`` -> ((x - mean) / (std + eps), std + eps), as MVNLayer::Forward_cpu."""
    centred = x - x.mean(dim=1, keepdim=True)
    std = centred.square().mean(dim=1, keepdim=True).sqrt() + eps
    return centred / std, std


@portable
def caffe_mvn(
    x: torch.Tensor,
    across_channels: bool,
    normalize_variance: bool,
    eps: float,
    rows_fn: object = None,
) -> torch.Tensor:
    """Caffe's MVN: each (num, channel) plane (each num with ``across_channels``) minus its
    mean, divided by (its standard deviation + eps) with ``normalize_variance``; the top
    has the legacy 4-D shape (Blob::LegacyShape: missing axes count 1). ``rows_fn``: the
    row normalisation to use instead of normalized_rows (one with Caffe's backward)."""
    shape = (*x.shape, 1, 1, 1, 1)[:4]
    rows = shape[0] if across_channels else shape[0] * shape[1]
    flat = x.reshape(rows, -1)
    if not normalize_variance:
        y = flat - flat.mean(dim=1, keepdim=True)
    elif callable(rows_fn):
        y = rows_fn(flat, eps)
    else:
        y = normalized_rows(flat, eps)[0]
    return y.reshape(shape)


class _MeanVarianceNorm(torch.autograd.Function):
    """Rows of ``x`` -> (x - mean) / (std + eps), with Caffe's MVN backward:
    dx = (dy - mean(dy) - y * mean(dy * y)) / (std + eps)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, eps: float) -> torch.Tensor:
        y, std = normalized_rows(x, eps)
        ctx.save_for_backward(y, std)
        return y

    @staticmethod
    def backward(ctx: Any, dy: torch.Tensor) -> tuple[torch.Tensor, None]:
        y, std = ctx.saved_tensors
        inner = dy.mean(dim=1, keepdim=True) + y * (dy * y).mean(dim=1, keepdim=True)
        return (dy - inner) / std, None


class CaffeMVN(nn.Module):
    """Mean-variance normalisation per (num, channel) or per num (``across_channels``). The
    top has Caffe's legacy 4-D shape (num, channels, height, width)."""

    def __init__(self, across_channels: bool, normalize_variance: bool, eps: float) -> None:
        super().__init__()
        self.across_channels = across_channels
        self.normalize_variance = normalize_variance
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _legacy_shape(x.shape)  # more than 4 axes: a clear error
        return caffe_mvn(
            x, self.across_channels, self.normalize_variance, self.eps, _MeanVarianceNorm.apply
        )

    def extra_repr(self) -> str:
        return (
            f"across_channels={self.across_channels}, "
            f"normalize_variance={self.normalize_variance}, eps={self.eps}"
        )


def _legacy_shape(shape: Sequence[int]) -> tuple[int, int, int, int]:
    # Blob::LegacyShape: axes past the end count as 1; more than 4 axes are refused.
    if len(shape) > 4:
        raise BuildError(
            f"MVN takes at most 4 axes (num, channels, height, width), got {len(shape)}"
        )
    padded = [*shape, 1, 1, 1, 1]
    return padded[0], padded[1], padded[2], padded[3]


@register_layer("MVN", param="mvn_param", aliases=("MVN",))
def build_mvn(ctx: BuildContext) -> nn.Module:
    p = ctx.param
    shape = ctx.bottom_shapes[0]
    if not 1 <= len(shape) <= 4:
        raise ctx.error(f"needs a bottom with 1 to 4 axes, got shape {tuple(shape)}")
    if math.prod(shape) == 0:
        raise ctx.error("the bottom is empty")
    return CaffeMVN(bool(p.across_channels), bool(p.normalize_variance), _f32(p.eps))


# ----------------------------------------------------------------------------- standalone source
# convert's emitters for the module classes above (caffe2torch.layers.emit)


@emitter(CaffeBatchNorm)
def _emit_batch_norm(e: Emit) -> list[str]:
    m = e.module
    use_global = not m.training if m.use_global_stats is None else m.use_global_stats
    if not use_global:
        raise e.unsupported("BatchNorm with batch statistics (use_global_stats: false)")
    # Caffe divides the stored sums by blob 2 (0 -> 0): stored here already divided
    mean, var = scaled_stats(*m.blobs)
    mean_attr = e.buffer(mean, "mean")
    var_attr = e.buffer(var, "var")
    x = e.bottoms[0]
    if len(e.bottom_shapes[0]) < 2:
        x = f"{x}.reshape(-1, 1)"
    y = f"F.batch_norm({x}, {mean_attr}, {var_attr}, eps={num(m.eps)})"
    if len(e.bottom_shapes[0]) < 2:
        y = f"{y}.reshape(-1)"
    return e.assign(y)


def _emit_spread(e: Emit, expr: str, blob_shape: Shape, axis: int) -> str:
    """``expr`` (of ``blob_shape``) viewed to broadcast from ``axis`` of the bottom."""
    ndim = len(e.bottom_shapes[0])
    trailing = ndim - axis - len(blob_shape)
    if not blob_shape or trailing <= 0:
        return expr
    return f"{expr}.view({', '.join(str(d) for d in (*blob_shape, *[1] * trailing))})"


@emitter(CaffeScale)
def _emit_scale(e: Emit) -> list[str]:
    m = e.module
    x = e.bottoms[0]
    if m.learned_scale:
        s = _emit_spread(e, e.param(0, "scale"), tuple(m.blobs[0].shape), m.axis)
    else:
        s = _emit_spread(e, e.bottoms[1], tuple(e.bottom_shapes[1]), m.axis)
    y = f"{x} * {s}"
    if m.bias_term:
        bias = e.param(len(m.blobs) - 1, "bias")
        b = _emit_spread(e, bias, tuple(m.blobs[-1].shape), m.bias_axis)
        y = f"{y} + {b}"
    return e.assign(y)


@emitter(CaffeBias)
def _emit_bias(e: Emit) -> list[str]:
    m = e.module
    if len(m.blobs):
        b = _emit_spread(e, e.param(0, "bias"), tuple(m.blobs[0].shape), m.axis)
    else:
        b = _emit_spread(e, e.bottoms[1], tuple(e.bottom_shapes[1]), m.axis)
    return e.assign(f"{e.bottoms[0]} + {b}")


@emitter(CaffeMVN)
def _emit_mvn(e: Emit) -> list[str]:
    m = e.module
    args = f"{e.bottoms[0]}, {m.across_channels}, {m.normalize_variance}, {num(m.eps)}"
    return e.assign(e.call("caffe_mvn", args))
