"""Caffe's vision layers: Convolution, Deconvolution, Im2col, Pooling, SPP, LRN,
InnerProduct and Embed, with Caffe's forward and backward numerics.

Native torch ops do the work (conv*, conv_transpose*, unfold, max/avg pooling); the Caffe
rules they do not share are applied around them:

* Pooling sizes round UP by default (``round_mode: FLOOR`` rounds down); with padding the
  last window is dropped when it would start inside the padding, else clipped to the input.
  MAX ignores the padding; the AVE divisor counts the padding but not what lies beyond it.
  Where torch's own pooling has the same windows (same output size, pad <= kernel / 2) it
  is called directly; otherwise the input is padded explicitly and the AVE divisor built
  from Caffe's formula.
* STOCHASTIC pooling exists only in Caffe's CUDA kernels (pooling_layer.cu): TRAIN samples
  one position per window with probability x / sum(window) (first position whose running
  sum reaches u * sum, u ~ U[0, 1)) and passes the gradient to it; TEST gives the weighted
  average sum(x^2) / sum(x) (0 when sum(x) <= 0). Caffe's TEST backward reads the sampling
  indices of a TRAIN pass that never ran (undefined), so TEST uses the derivative of the
  weighted average instead.
* LRN ACROSS_CHANNELS: x * (k + alpha / size * sum over ``size`` channels of x^2)^-beta with
  zero padding; WITHIN_CHANNEL: x * (1 + alpha * AVE-pool(x^2, size, pad (size - 1) / 2))^-beta
  (alpha divided by size^2; ``k`` is not used, as in Caffe).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from caffe2torch.errors import BuildError
from caffe2torch.ir.geometry import (
    ConvGeometry,
    ParamProblem,
    PoolWindow,
    check_pool_window,
    pooled_size,
    read_conv_geometry,
    read_pool_window,
)
from caffe2torch.ir.shapes import (
    conv_shape,
    inner_product_shape,
    known,
    pool_shape,
    same_shape,
)
from caffe2torch.layers import cpu_kernels, grad_buffers
from caffe2torch.layers.emit import Emit, emitter, nondefault_kwargs, num, tup
from caffe2torch.layers.fillers import make_filled
from caffe2torch.layers.portable import portable
from caffe2torch.layers.registry import BuildContext, register_layer
from caffe2torch.numerics import as_f32 as _f32
from caffe2torch.proto import caffe_pb2

Pair = tuple[int, int]

MAX = caffe_pb2.PoolingParameter.MAX
AVE = caffe_pb2.PoolingParameter.AVE
STOCHASTIC = caffe_pb2.PoolingParameter.STOCHASTIC
_POOL_NAMES: dict[int, str] = {MAX: "MAX", AVE: "AVE", STOCHASTIC: "STOCHASTIC"}


def canonical_axis(ctx: BuildContext, axis: int, num_axes: int, what: str = "axis") -> int:
    """Caffe's Blob::CanonicalAxisIndex: -num_axes <= axis < num_axes, negatives from the end."""
    if not -num_axes <= axis < num_axes:
        raise ctx.error(
            f"{what} {axis} is out of range for a bottom with {num_axes} axes",
            hint=f"use a value in [{-num_axes}, {num_axes - 1}]",
        )
    return axis + num_axes if axis < 0 else axis


def _generator(ctx: BuildContext) -> torch.Generator | None:
    return ctx.options.get("generator")


# --------------------------------------------------------------------------- convolution


def conv_geometry(ctx: BuildContext, p: Any, n: int) -> ConvGeometry:
    """Read a ConvolutionParameter for ``n`` spatial axes, with Caffe's checks (ir.geometry's
    reader; its problem is this layer's error)."""
    block = ctx.spec.param if ctx.spec and ctx.spec.param else "convolution_param"
    hole = ctx.extra_field(f"{block}.hole")  # DeepLab v1's name for the dilation
    geom = read_conv_geometry(p, n, None if hole is None else int(hole), block)
    if isinstance(geom, ParamProblem):
        raise ctx.error(geom.message, hint=geom.hint)
    return geom


_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
_DECONV = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}


class CaffeConvolution(nn.Module):
    """Caffe's Convolution / Deconvolution over the axes after ``axis`` (N-D, groups,
    dilation). Axes before ``axis`` are batch-like; one weight serves every bottom."""

    def __init__(
        self,
        weight: torch.Tensor,
        bias: torch.Tensor | None,
        geometry: ConvGeometry,
        group: int,
        axis: int,
        transposed: bool,
    ) -> None:
        super().__init__()
        blobs = [nn.Parameter(weight)]
        if bias is not None:
            blobs.append(nn.Parameter(bias))
        self.blobs = nn.ParameterList(blobs)
        self.geometry = geometry
        self.group = group
        self.axis = axis
        self.transposed = transposed

    def forward(self, *bottoms: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
        if len(bottoms) == 1:
            return self._one(bottoms[0])
        return tuple(self._one(x) for x in bottoms)  # Caffe: one top per bottom, same weights

    def _one(self, x: torch.Tensor) -> torch.Tensor:
        g = self.geometry
        lead = x.shape[: self.axis]
        if self.axis != 1:
            x = x.reshape((-1, *x.shape[self.axis :]))
        weight = self.blobs[0]
        bias = self.blobs[1] if len(self.blobs) > 1 else None
        kernel, stride, pad, dilation = g.kernel, g.stride, g.pad, g.dilation
        if not kernel:  # 0 spatial axes: a 1x1 convolution over a length-1 axis
            x, weight = x.unsqueeze(-1), weight.unsqueeze(-1)
            stride, pad, dilation = (1,), (0,), (1,)
        if self.transposed:
            y = _DECONV[x.dim() - 2](x, weight, bias, stride, pad, 0, self.group, dilation)
        else:
            if x.dim() == 4 and cpu_kernels.strided_pointwise(x, kernel, stride, pad):
                x, stride = cpu_kernels.subsample(x, stride), (1, 1)
            y = _CONV[x.dim() - 2](x, weight, bias, stride, pad, dilation, self.group)
        if not kernel:
            y = y.squeeze(-1)
        if self.axis != 1:
            y = y.reshape((*lead, *y.shape[1:]))
        return y

    def infer_shapes(self, shapes: list[tuple[int, ...]]) -> list[tuple[int, ...]]:
        # The builder checked the geometry (ir.shapes.conv_shape: compute_output_shape).
        weight = self.blobs[0].shape
        channels = int(weight[1] * self.group if self.transposed else weight[0])
        top = conv_shape(shapes[0], self.axis, channels, self.geometry, self.transposed)
        return [known(top)] * len(shapes)

    def extra_repr(self) -> str:
        g = self.geometry
        kind = "deconvolution" if self.transposed else "convolution"
        return (
            f"{kind}, weight={tuple(self.blobs[0].shape)}, kernel={g.kernel}, stride={g.stride}, "
            f"pad={g.pad}, dilation={g.dilation}, group={self.group}, axis={self.axis}, "
            f"bias={len(self.blobs) > 1}"
        )


def _build_conv(ctx: BuildContext, transposed: bool) -> nn.Module:
    p = ctx.param
    if ctx.num_tops != len(ctx.bottom_shapes):
        raise ctx.error(
            f"needs one top per bottom, got {len(ctx.bottom_shapes)} bottoms "
            f"and {ctx.num_tops} tops"
        )
    shape = ctx.bottom_shapes[0]
    for other in ctx.bottom_shapes[1:]:
        if tuple(other) != tuple(shape):
            raise ctx.error(f"all bottoms must have the same shape: {shape} vs {other}")
    axis = canonical_axis(ctx, p.axis, len(shape))
    n = len(shape) - axis - 1
    if n > 3:
        raise ctx.error(
            f"{n} spatial axes: only 1-, 2- and 3-D convolutions are supported",
            hint="check `axis` and the bottom shape",
        )
    geom = conv_geometry(ctx, p, n)
    channels = shape[axis]
    if p.num_output <= 0:
        raise ctx.error("num_output must be > 0", hint="set convolution_param { num_output: N }")
    if p.group <= 0 or channels % p.group:
        raise ctx.error(f"group ({p.group}) must divide the input channels ({channels})")
    if p.num_output % p.group:
        raise ctx.error(f"num_output ({p.num_output}) must be a multiple of group ({p.group})")
    sizes = shape[axis + 1 :]
    out = geom.deconv_output_size(sizes) if transposed else geom.output_size(sizes)
    if any(o <= 0 for o in out):
        raise ctx.error(
            f"output spatial size {out} is empty for input {tuple(sizes)} "
            f"(kernel {geom.kernel}, stride {geom.stride}, pad {geom.pad})"
        )
    # Caffe: Convolution weight (out, in / group, k...), Deconvolution (in, out / group, k...).
    if transposed:
        weight_shape = (channels, p.num_output // p.group, *geom.kernel)
    else:
        weight_shape = (p.num_output, channels // p.group, *geom.kernel)
    gen = _generator(ctx)
    weight = make_filled(weight_shape, p.weight_filler, gen)
    bias = make_filled((p.num_output,), p.bias_filler, gen) if p.bias_term else None
    return CaffeConvolution(weight, bias, geom, p.group, axis, transposed)


@register_layer(
    "Convolution",
    param="convolution_param",
    bottoms=(1, None),
    tops=(1, None),
    blobs=("weight", "bias"),
    aliases=("CONVOLUTION", "conv"),
)
def build_convolution(ctx: BuildContext) -> nn.Module:
    return _build_conv(ctx, transposed=False)


@register_layer(
    "Deconvolution",
    param="convolution_param",
    bottoms=(1, None),
    tops=(1, None),
    blobs=("weight", "bias"),
    aliases=("DECONVOLUTION",),
)
def build_deconvolution(ctx: BuildContext) -> nn.Module:
    return _build_conv(ctx, transposed=True)


# --------------------------------------------------------------------------- im2col


class CaffeIm2col(nn.Module):
    """Caffe's Im2col: (..., C, *spatial) -> (..., C * prod(kernel), *output), rows ordered
    channel-major then kernel offsets (row-major), as F.unfold orders them."""

    def __init__(self, geometry: ConvGeometry, axis: int) -> None:
        super().__init__()
        self.geometry = geometry
        self.axis = axis

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        g = self.geometry
        lead = x.shape[: self.axis]
        x = x.reshape((-1, *x.shape[self.axis :]))
        out = g.output_size(x.shape[2:])
        if len(g.kernel) == 2:
            cols = F.unfold(x, g.kernel, g.dilation, g.pad, g.stride)
        else:
            cols = _unfold_nd(x, g)
        cols = cols.reshape(x.shape[0], -1, *out)
        return cols.reshape((*lead, *cols.shape[1:]))

    def extra_repr(self) -> str:
        g = self.geometry
        return f"kernel={g.kernel}, stride={g.stride}, pad={g.pad}, dilation={g.dilation}"


def _unfold_nd(x: torch.Tensor, g: ConvGeometry) -> torch.Tensor:
    """N-D im2col of (B, C, *spatial): (B, C * prod(kernel), prod(output))."""
    n = len(g.kernel)
    pads: list[int] = []
    for p in reversed(g.pad):
        pads += [p, p]
    x = F.pad(x, pads)
    for i, (k, s, d) in enumerate(zip(g.kernel, g.stride, g.dilation)):
        x = x.unfold(2 + i, d * (k - 1) + 1, s)[..., ::d]
    # (B, C, *out, *kernel) -> (B, C, *kernel, *out)
    perm = [0, 1, *range(2 + n, 2 + 2 * n), *range(2, 2 + n)]
    x = x.permute(perm)
    return x.reshape(x.shape[0], -1, math.prod(x.shape[2 + n :]))


@register_layer("Im2col", param="convolution_param", aliases=("IM2COL", "im2col"))
def build_im2col(ctx: BuildContext) -> nn.Module:
    p = ctx.param
    shape = ctx.bottom_shapes[0]
    axis = canonical_axis(ctx, p.axis, len(shape))
    n = len(shape) - axis - 1
    if n < 1:
        raise ctx.error("Im2col needs at least one spatial axis after the channel axis")
    geom = conv_geometry(ctx, p, n)
    if any(o <= 0 for o in geom.output_size(shape[axis + 1 :])):
        raise ctx.error(f"output spatial size is empty for input {tuple(shape[axis + 1 :])}")
    return CaffeIm2col(geom, axis)


# --------------------------------------------------------------------------- pooling


def _torch_pooled_size(size: int, kernel: int, stride: int, pad: int, ceil_mode: bool) -> int:
    # torch's pooling_output_shape: the drop rule applies in ceil mode even without padding.
    out = (size + 2 * pad - kernel + (stride - 1 if ceil_mode else 0)) // stride + 1
    if ceil_mode and (out - 1) * stride >= size + pad:
        out -= 1
    return out


@dataclass(frozen=True)
class PoolGeometry:
    """One pooling's windows over an H x W input: Caffe's output size and whether torch's
    own pooling (and in which ceil mode) has exactly the same windows."""

    size: Pair
    kernel: Pair
    stride: Pair
    pad: Pair
    out: Pair
    torch_ceil_mode: bool | None  # None: torch cannot do it directly (pad explicitly)

    @staticmethod
    def make(size: Pair, kernel: Pair, stride: Pair, pad: Pair, ceil_mode: bool) -> PoolGeometry:
        refused = check_pool_window(kernel, stride, pad)
        if refused:
            raise BuildError(refused)
        out = (
            pooled_size(size[0], kernel[0], stride[0], pad[0], ceil_mode),
            pooled_size(size[1], kernel[1], stride[1], pad[1], ceil_mode),
        )
        if min(out) <= 0:
            raise BuildError(
                f"pooling kernel {kernel} (pad {pad}) is larger than the input {size}: "
                f"the output would be {out}"
            )
        for i in range(2):
            if pad[i] and (out[i] - 1) * stride[i] >= size[i] + pad[i]:
                raise BuildError(
                    f"pooling geometry: the last window along axis {i + 2} starts in the "
                    f"padding (input {size}, kernel {kernel}, stride {stride}, pad {pad})"
                )
        mode: bool | None = None
        if 2 * pad[0] <= kernel[0] and 2 * pad[1] <= kernel[1]:
            for candidate in (ceil_mode, not ceil_mode):
                torch_out = tuple(
                    _torch_pooled_size(size[i], kernel[i], stride[i], pad[i], candidate)
                    for i in range(2)
                )
                if torch_out == out:
                    mode = candidate
                    break
        return PoolGeometry(size, kernel, stride, pad, out, mode)

    def padded(self, x: torch.Tensor, value: float) -> torch.Tensor:
        """``x`` padded (or cropped) so that unpadded floor-mode pooling sees Caffe's windows."""
        borders = window_borders(self.size, self.kernel, self.stride, self.pad, self.out)
        return F.pad(x, borders, value=value)


@portable
def window_borders(
    size: tuple[int, int],
    kernel: tuple[int, int],
    stride: tuple[int, int],
    pad: tuple[int, int],
    out: tuple[int, int],
) -> tuple[int, int, int, int]:
    """F.pad's (left, right, top, bottom) that make floor-mode torch pooling without padding
    see Caffe's ``out`` windows: ``pad`` before, and after whatever the last window needs
    (negative: crop what no window reaches)."""
    right = [(out[i] - 1) * stride[i] + kernel[i] - size[i] - pad[i] for i in range(2)]
    return (pad[1], right[1], pad[0], right[0])


@portable
def caffe_pool_padded(
    x: torch.Tensor,
    method: str,
    kernel: tuple[int, int],
    stride: tuple[int, int],
    pad: tuple[int, int],
    out: tuple[int, int],
    with_mask: bool = False,
) -> tuple[torch.Tensor, ...]:
    """Caffe's MAX or AVE pooling (PoolingLayer::Forward_cpu) of (N, C, H, W) ``x`` to
    ``out`` windows, for geometries torch's own pooling does not share: the input is padded
    explicitly. MAX: the padding never wins; a window with no input (kernel < stride) is
    -FLT_MAX with mask -1; the mask is h * W + w as a float. AVE: the window's sum over the
    input divided by the window clipped to size + pad (padding counts, beyond it not).
    Returns (top,) or, MAX with ``with_mask``, (top, mask)."""
    size = (x.shape[-2], x.shape[-1])
    borders = window_borders(size, kernel, stride, pad, out)
    starts = [torch.arange(out[i], device=x.device) * stride[i] - pad[i] for i in range(2)]
    if method == "AVE":
        summed = F.avg_pool2d(F.pad(x, borders, value=0.0), kernel, stride, divisor_override=1)
        extents = []
        for i in range(2):
            end = torch.clamp(starts[i] + kernel[i], max=size[i] + pad[i])
            extents.append((end - starts[i]).to(x.dtype))
        return (summed / (extents[0][:, None] * extents[1][None, :]),)
    xp = F.pad(x, borders, value=float("-inf"))
    top, idx = F.max_pool2d(xp, kernel, stride, return_indices=True)
    # only without padding and with kernel < stride can a window start past the input
    if any((out[i] - 1) * stride[i] - pad[i] >= size[i] for i in range(2)):
        empty = (starts[0] >= size[0])[:, None] | (starts[1] >= size[1])[None, :]
        top = torch.where(empty, torch.finfo(x.dtype).min, top)
        idx = torch.where(empty, -1, idx)
    if not with_mask:
        return (top,)
    width = xp.shape[-1]
    h = torch.div(idx, width, rounding_mode="floor") - pad[0]
    w = torch.remainder(idx, width) - pad[1]
    mask = torch.where(idx < 0, -1, h * size[1] + w)
    return top, mask.to(x.dtype)


def max_pool(x: torch.Tensor, geom: PoolGeometry, with_mask: bool) -> tuple[torch.Tensor, ...]:
    """Caffe's MAX pooling: (top,) or (top, argmax h * W + w as float)."""
    if geom.torch_ceil_mode is not None:
        if cpu_kernels.eager_cpu(x) and x.is_contiguous():  # NCHW: ~8x slower kernel
            top, index = cpu_kernels.max_pool_channels_last(
                x, geom.kernel, geom.stride, geom.pad, geom.torch_ceil_mode)
            return (top, index.to(x.dtype)) if with_mask else (top,)
        if not with_mask:
            return (F.max_pool2d(x, geom.kernel, geom.stride, geom.pad, 1, geom.torch_ceil_mode),)
        top, idx = F.max_pool2d(
            x, geom.kernel, geom.stride, geom.pad, 1, geom.torch_ceil_mode, return_indices=True
        )
        return top, idx.to(x.dtype)
    return caffe_pool_padded(x, "MAX", geom.kernel, geom.stride, geom.pad, geom.out, with_mask)


def ave_pool(x: torch.Tensor, geom: PoolGeometry) -> torch.Tensor:
    """Caffe's AVE pooling (sum of the window inside the input / Caffe's divisor)."""
    if geom.torch_ceil_mode is not None:
        # torch's count_include_pad divisor is Caffe's: the window clipped to size + pad.
        return F.avg_pool2d(x, geom.kernel, geom.stride, geom.pad, geom.torch_ceil_mode, True)
    return caffe_pool_padded(x, "AVE", geom.kernel, geom.stride, geom.pad, geom.out)[0]


def stochastic_pool(x: torch.Tensor, geom: PoolGeometry, train: bool) -> torch.Tensor:
    """Caffe's STOCHASTIC pooling (CUDA kernels StoPoolForwardTrain / StoPoolForwardTest)."""
    xp = geom.padded(x, 0.0)  # no padding on the left; zeros on the right add nothing
    if not train:
        total = F.avg_pool2d(xp, geom.kernel, geom.stride, divisor_override=1)
        squares = F.avg_pool2d(xp * xp, geom.kernel, geom.stride, divisor_override=1)
        positive = total > 0
        return torch.where(positive, squares / torch.where(positive, total, 1.0), 0.0)
    n, c = x.shape[:2]
    cols = F.unfold(xp, geom.kernel, stride=geom.stride)
    cols = cols.reshape(n, c, geom.kernel[0] * geom.kernel[1], -1)
    running = cols.detach().cumsum(dim=2)
    threshold = torch.rand_like(running[:, :, -1:]) * running[:, :, -1:]
    # The first window position whose running sum reaches the threshold (padding positions
    # come after a real one with the same running sum, so they are never the first).
    pick = (running >= threshold).to(x.dtype).argmax(dim=2, keepdim=True)
    return cols.gather(2, pick).reshape(n, c, *geom.out)


# A net pools the same few input sizes at every forward: work out each geometry once.
_cached_geometry = functools.lru_cache(maxsize=1024)(PoolGeometry.make)


def caffe_pool(
    x: torch.Tensor,
    method: int,
    kernel: Pair,
    stride: Pair,
    pad: Pair,
    ceil_mode: bool = True,
    with_mask: bool = False,
    train: bool = False,
) -> tuple[torch.Tensor, ...]:
    """Pool a (N, C, H, W) tensor as Caffe's PoolingLayer; returns (top,) or (top, mask)."""
    if x.dim() != 4:
        raise BuildError(
            f"Pooling needs a 4-D (num, channels, height, width) input, got {x.dim()}-D"
        )
    size = (x.shape[2], x.shape[3])
    if type(size[0]) is int and type(size[1]) is int and not torch.compiler.is_compiling():
        geom = _cached_geometry(size, kernel, stride, pad, ceil_mode)  # eager: plain ints
    else:
        geom = PoolGeometry.make(size, kernel, stride, pad, ceil_mode)
    if method == MAX:
        return max_pool(x, geom, with_mask)
    if method == AVE:
        return (ave_pool(x, geom),)
    if pad != (0, 0):
        raise BuildError("STOCHASTIC pooling takes no padding (Caffe pads only AVE and MAX)")
    return (stochastic_pool(x, geom, train),)


class CaffePooling(nn.Module):
    """Caffe's Pooling layer (MAX, AVE, STOCHASTIC; optional MAX argmax top)."""

    def __init__(
        self,
        method: int,
        kernel: Pair | None,
        stride: Pair,
        pad: Pair,
        ceil_mode: bool,
        with_mask: bool,
    ) -> None:
        super().__init__()
        self.method = method
        self.kernel = kernel  # None: global pooling, the kernel is the input's H x W
        self.stride = stride
        self.pad = pad
        self.ceil_mode = ceil_mode
        self.with_mask = with_mask

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
        kernel = self.kernel if self.kernel is not None else (x.shape[-2], x.shape[-1])
        tops = caffe_pool(
            x,
            self.method,
            kernel,
            self.stride,
            self.pad,
            self.ceil_mode,
            self.with_mask,
            self.training,
        )
        return tops if self.with_mask else tops[0]

    def infer_shapes(self, shapes: list[tuple[int, ...]]) -> list[tuple[int, ...]]:
        # The builder checked the geometry (ir.shapes.pool_shape: PoolingLayer::Reshape).
        window = PoolWindow(self.kernel, self.stride, self.pad, self.ceil_mode)
        top = known(pool_shape(shapes[0], window))
        return [top, top] if self.with_mask else [top]

    def extra_repr(self) -> str:
        kernel = "global" if self.kernel is None else self.kernel
        mode = "ceil" if self.ceil_mode else "floor"
        return (
            f"{_POOL_NAMES.get(self.method, self.method)}, kernel={kernel}, stride={self.stride}, "
            f"pad={self.pad}, round={mode}"
        )


@register_layer("Pooling", param="pooling_param", tops=(1, 2), aliases=("POOLING", "pool"))
def build_pooling(ctx: BuildContext) -> nn.Module:
    p = ctx.param
    shape = ctx.bottom_shapes[0]
    if len(shape) != 4:
        raise ctx.error(f"needs a 4-D (num, channels, height, width) bottom, got shape {shape}")
    if p.pool not in _POOL_NAMES:
        raise ctx.error(f"unknown pooling method {p.pool}")
    if ctx.num_tops == 2 and p.pool != MAX:
        raise ctx.error("only MAX pooling has a second (argmax mask) top")
    window = read_pool_window(p)
    if isinstance(window, ParamProblem):
        raise ctx.error(window.message, hint=window.hint)
    kernel, stride, pad = window.kernel, window.stride, window.pad
    module = CaffePooling(p.pool, kernel, stride, pad, window.ceil_mode, ctx.num_tops == 2)
    try:  # Caffe checks the geometry at setup
        PoolGeometry.make(
            (shape[2], shape[3]), kernel or (shape[2], shape[3]), stride, pad, module.ceil_mode
        )
    except BuildError as err:
        raise ctx.error(err.message) from None
    return module


# --------------------------------------------------------------------------- SPP


def spp_level_geometry(size: Pair, level: int) -> tuple[Pair, Pair]:
    """Kernel (= stride) and pad of pyramid level ``level`` (SPPLayer::GetPoolingParam):
    2^level bins per axis, kernel ceil(size / bins), pad (kernel * bins - size + 1) / 2."""
    bins = 2**level
    kernel = tuple(math.ceil(s / bins) for s in size)
    pad = tuple((k * bins - s + 1) // 2 for k, s in zip(kernel, size))
    return (kernel[0], kernel[1]), (pad[0], pad[1])


class CaffeSPP(nn.Module):
    """Spatial pyramid pooling: each level pooled, flattened and concatenated (N, C * sum
    4^l); a one-level pyramid is a plain (N, C, 1, 1) pooling, as in Caffe."""

    def __init__(self, pyramid_height: int, method: int) -> None:
        super().__init__()
        self.pyramid_height = pyramid_height
        self.method = method

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4:
            raise BuildError(
                f"SPP needs a 4-D (num, channels, height, width) input, got {x.dim()}-D"
            )
        size = (x.shape[2], x.shape[3])
        levels = []
        for level in range(self.pyramid_height):
            kernel, pad = spp_level_geometry(size, level)
            top = caffe_pool(x, self.method, kernel, kernel, pad, train=self.training)[0]
            if self.pyramid_height == 1:
                return top
            levels.append(top.flatten(1))
        return torch.cat(levels, dim=1)

    def extra_repr(self) -> str:
        return f"pyramid_height={self.pyramid_height}, pool={_POOL_NAMES.get(self.method)}"


@register_layer("SPP", param="spp_param")
def build_spp(ctx: BuildContext) -> nn.Module:
    p = ctx.param
    shape = ctx.bottom_shapes[0]
    if len(shape) != 4:
        raise ctx.error(f"needs a 4-D (num, channels, height, width) bottom, got shape {shape}")
    if p.pyramid_height < 1:
        raise ctx.error("pyramid_height must be >= 1")
    # SPPParameter.PoolMethod has PoolingParameter's values (MAX 0, AVE 1, STOCHASTIC 2).
    module = CaffeSPP(int(p.pyramid_height), int(p.pool))
    try:
        infer = torch.empty(shape, device="meta")
        with torch.no_grad():
            module(infer)
    except BuildError as err:
        raise ctx.error(err.message) from None
    return module


# --------------------------------------------------------------------------- LRN


@portable
def caffe_lrn(
    x: torch.Tensor, size: int, alpha: float, beta: float, k: float, within: bool
) -> torch.Tensor:
    """Caffe's LRN of (N, C, H, W) ``x`` (LRNLayer). ACROSS_CHANNELS: x * (k + alpha / size *
    sum of x^2 over ``size`` zero-padded channels)^-beta; WITHIN_CHANNEL (Caffe's sub-net
    Power(2) -> AVE Pooling(size, pad (size - 1) / 2) -> Power(-beta, alpha, 1)):
    x * (1 + alpha * AVE-pool of x^2)^-beta, where torch's divisor is Caffe's."""
    pre_pad = (size - 1) // 2
    squares = x * x
    if within:
        pooled = F.avg_pool2d(squares, size, 1, pre_pad, False, True)
        scale = 1.0 + alpha * pooled
    else:
        # Mean over `size` channels of the zero-padded squares: sum / size.
        padded = F.pad(squares, (0, 0, 0, 0, pre_pad, size - 1 - pre_pad))
        window = F.avg_pool3d(padded.unsqueeze(1), (size, 1, 1), 1).squeeze(1)
        # in place: the pooling's backward does not read its output
        scale = window.mul_(alpha).add_(k)
    if not (torch.is_grad_enabled() and x.requires_grad):
        return x * scale.pow_(-beta)  # inference: one buffer for the whole chain
    return x * torch.pow(scale, -beta)


class CaffeLRN(nn.Module):
    """Local response normalisation, ACROSS_CHANNELS or WITHIN_CHANNEL (see module doc)."""

    def __init__(self, size: int, alpha: float, beta: float, k: float, within: bool) -> None:
        super().__init__()
        self.size = size
        self.alpha = alpha
        self.beta = beta
        self.k = k
        self.within = within

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4:
            raise BuildError(
                f"LRN needs a 4-D (num, channels, height, width) input, got {x.dim()}-D"
            )
        if not self.within and cpu_kernels.eager_cpu(x):
            return cpu_kernels.cross_channel_lrn(x, self.size, self.alpha, self.beta, self.k)
        return caffe_lrn(x, self.size, self.alpha, self.beta, self.k, self.within)

    def infer_shapes(self, shapes: list[tuple[int, ...]]) -> list[tuple[int, ...]]:
        return [same_shape(shapes)]

    def extra_repr(self) -> str:
        region = "WITHIN_CHANNEL" if self.within else "ACROSS_CHANNELS"
        return f"{region}, size={self.size}, alpha={self.alpha}, beta={self.beta}, k={self.k}"


@register_layer("LRN", param="lrn_param", aliases=("LRN", "lrn"))
def build_lrn(ctx: BuildContext) -> nn.Module:
    p = ctx.param
    shape = ctx.bottom_shapes[0]
    if len(shape) != 4:
        raise ctx.error(f"needs a 4-D (num, channels, height, width) bottom, got shape {shape}")
    if p.local_size % 2 != 1:
        raise ctx.error(f"local_size must be odd, got {p.local_size}")
    within = p.norm_region == caffe_pb2.LRNParameter.WITHIN_CHANNEL
    return CaffeLRN(int(p.local_size), _f32(p.alpha), _f32(p.beta), _f32(p.k), within)


# --------------------------------------------------------------------------- InnerProduct


class CaffeInnerProduct(nn.Module):
    """y = x W^T + b with x flattened from ``axis``; ``transpose`` stores W as (K, N)."""

    def __init__(
        self, weight: torch.Tensor, bias: torch.Tensor | None, axis: int, transpose: bool
    ) -> None:
        super().__init__()
        blobs = [nn.Parameter(weight)]
        if bias is not None:
            blobs.append(nn.Parameter(bias))
        self.blobs = nn.ParameterList(blobs)
        self.axis = axis
        self.transpose = transpose

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.reshape((*x.shape[: self.axis], -1))
        bias = self.blobs[1] if len(self.blobs) > 1 else None
        return grad_buffers.linear(x, self.blobs[0], bias, self.transpose)

    def infer_shapes(self, shapes: list[tuple[int, ...]]) -> list[tuple[int, ...]]:
        n = self.blobs[0].shape[1] if self.transpose else self.blobs[0].shape[0]
        return [known(inner_product_shape(shapes[0], self.axis, int(n)))]

    def extra_repr(self) -> str:
        return (
            f"weight={tuple(self.blobs[0].shape)}, axis={self.axis}, "
            f"transpose={self.transpose}, bias={len(self.blobs) > 1}"
        )


@register_layer(
    "InnerProduct",
    param="inner_product_param",
    bottoms=(1, 2),
    blobs=("weight", "bias"),
    aliases=("INNER_PRODUCT", "innerproduct"),
)
def build_inner_product(ctx: BuildContext) -> nn.Module:
    """BVLC's InnerProduct; happynear's fork options (``normalize: true``, the weight as a
    second bottom) are built by the fork's module."""
    if len(ctx.bottom_shapes) == 2 or ctx.param.normalize:
        from caffe2torch.layers.forks.face import build_inner_product_fork

        return build_inner_product_fork(ctx)
    return plain_inner_product(ctx)


def plain_inner_product(ctx: BuildContext) -> CaffeInnerProduct:
    """BVLC's InnerProduct over one bottom: y = x W^T + b."""
    p = ctx.param
    shape = ctx.bottom_shapes[0]
    axis = canonical_axis(ctx, p.axis, len(shape))
    if p.num_output <= 0:
        raise ctx.error("num_output must be > 0", hint="set inner_product_param { num_output: N }")
    k = math.prod(shape[axis:])
    n = int(p.num_output)
    gen = _generator(ctx)
    weight = make_filled((k, n) if p.transpose else (n, k), p.weight_filler, gen)
    bias = make_filled((n,), p.bias_filler, gen) if p.bias_term else None
    return CaffeInnerProduct(weight, bias, axis, bool(p.transpose))


# --------------------------------------------------------------------------- Embed


class CaffeEmbed(nn.Module):
    """Rows of W (input_dim, num_output) picked by the bottom's values (as int), plus bias.
    Caffe has no gradient for the indices; W gets the scattered sum of the top diff."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None) -> None:
        super().__init__()
        blobs = [nn.Parameter(weight)]
        if bias is not None:
            blobs.append(nn.Parameter(bias))
        self.blobs = nn.ParameterList(blobs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # static_cast<int>: truncation toward zero, as Tensor.long().
        y = grad_buffers.embedding(x.detach().long(), self.blobs[0])
        return y + self.blobs[1] if len(self.blobs) > 1 else y

    def extra_repr(self) -> str:
        return f"weight={tuple(self.blobs[0].shape)}, bias={len(self.blobs) > 1}"


@register_layer("Embed", param="embed_param", blobs=("weight", "bias"))
def build_embed(ctx: BuildContext) -> nn.Module:
    p = ctx.param
    if p.num_output <= 0:
        raise ctx.error("num_output must be > 0", hint="set embed_param { num_output: N }")
    if p.input_dim <= 0:
        raise ctx.error("input_dim must be > 0", hint="set embed_param { input_dim: V }")
    gen = _generator(ctx)
    weight = make_filled((int(p.input_dim), int(p.num_output)), p.weight_filler, gen)
    bias = make_filled((int(p.num_output),), p.bias_filler, gen) if p.bias_term else None
    return CaffeEmbed(weight, bias)


# ----------------------------------------------------------------------------- standalone source
# convert's emitters for the module classes above (caffe2torch.layers.emit)


@emitter(CaffeConvolution)
def _emit_conv(e: Emit) -> list[str]:
    m = e.module
    g = m.geometry
    n = len(g.kernel)
    if m.axis != 1 or not 1 <= n <= 3:
        raise e.unsupported(f"a convolution over axis {m.axis} with {n} spatial axes")
    w = e.param(0, "weight")
    b = e.param(1, "bias") if len(m.blobs) > 1 else "None"
    lines = []
    for x, top in zip(e.bottoms, e.tops):
        if m.transposed:
            kw = nondefault_kwargs([("stride", tup(g.stride), "1"), ("padding", tup(g.pad), "0"),
                          ("groups", str(m.group), "1"), ("dilation", tup(g.dilation), "1")])
            lines.append(f"{top} = F.conv_transpose{n}d({x}, {w}, {b}{kw})")
        else:
            kw = nondefault_kwargs([("stride", tup(g.stride), "1"), ("padding", tup(g.pad), "0"),
                          ("dilation", tup(g.dilation), "1"), ("groups", str(m.group), "1")])
            lines.append(f"{top} = F.conv{n}d({x}, {w}, {b}{kw})")
    return lines


@emitter(CaffeInnerProduct)
def _emit_inner_product(e: Emit) -> list[str]:
    m = e.module
    x = e.bottoms[0]
    if len(e.bottom_shapes[0]) != m.axis + 1:
        x = f"{x}.flatten({m.axis})"
    w = e.param(0, "weight")
    if m.transpose:
        w += ".t()"
    b = e.param(1, "bias") if len(m.blobs) > 1 else "None"
    return e.assign(f"F.linear({x}, {w}, {b})")


@emitter(CaffePooling)
def _emit_pooling(e: Emit) -> list[str]:
    m = e.module
    x = e.bottoms[0]
    if m.method not in (MAX, AVE):
        raise e.unsupported("STOCHASTIC pooling")
    is_max = m.method == MAX
    # the mask top (MAX only): argmax h * W + w of each window, as a float blob
    mask = m.with_mask and len(e.tops) > 1
    if m.kernel is None and not mask:  # global pooling: the window is the whole plane
        if is_max:
            return e.assign(f"torch.amax({x}, dim=(2, 3), keepdim=True)")
        return e.assign(f"{x}.mean(dim=(2, 3), keepdim=True)")
    method = "MAX" if is_max else "AVE"
    return _emit_pool(e, x, method, m.kernel, m.stride, m.pad, m.ceil_mode, mask)


def _emit_pool(
    e: Emit, x: str, method: str, kernel: Any, stride: Any, pad: Any, ceil: bool, mask: bool
) -> list[str]:
    if not mask:
        return e.assign(pool_expr(e, x, method, kernel, stride, pad, ceil))
    geom = _emit_pool_geometry(e, kernel, stride, pad, ceil)
    if geom.torch_ceil_mode is None:
        args = f"{x}, {method!r}, {geom.kernel}, {geom.stride}, {geom.pad}, {geom.out}"
        return [f"{e.tops[0]}, {e.tops[1]} = "
                f"{e.call('caffe_pool_padded', args + ', with_mask=True')}"]
    index = e.local("index")
    args = _emit_native_pool_args(x, geom)
    return [f"{e.tops[0]}, {index} = F.max_pool2d({args}, return_indices=True)",
            f"{e.tops[1]} = {index}.to({x}.dtype)"]


def _emit_pool_geometry(e: Emit, kernel: Any, stride: Any, pad: Any, ceil: bool) -> Any:
    shape = e.bottom_shapes[0]
    size = (int(shape[2]), int(shape[3]))
    window = (int(kernel[0]), int(kernel[1])) if kernel is not None else size
    return PoolGeometry.make(size, window, (int(stride[0]), int(stride[1])),
                                    (int(pad[0]), int(pad[1])), ceil)


def _emit_native_pool_args(x: str, geom: Any) -> str:
    kw = nondefault_kwargs([("padding", tup(geom.pad), "0"),
                  ("ceil_mode", str(geom.torch_ceil_mode), "False")])
    return f"{x}, {tup(geom.kernel)}, {tup(geom.stride)}{kw}"


def pool_expr(e: Emit, x: str, method: str, kernel: Any, stride: Any, pad: Any,
              ceil: bool = True) -> str:
    """Caffe's MAX or AVE pooling of ``x`` (of the layer's first bottom shape): torch's own
    pooling where the library's PoolGeometry says it has Caffe's windows, else the
    library's explicit padding (caffe_pool_padded)."""
    geom = _emit_pool_geometry(e, kernel, stride, pad, ceil)
    if geom.torch_ceil_mode is None:
        args = f"{x}, {method!r}, {geom.kernel}, {geom.stride}, {geom.pad}, {geom.out}"
        return f"{e.call('caffe_pool_padded', args)}[0]"
    torch_pool = "F.max_pool2d" if method == "MAX" else "F.avg_pool2d"
    return f"{torch_pool}({_emit_native_pool_args(x, geom)})"


@emitter(CaffeLRN)
def _emit_lrn(e: Emit) -> list[str]:
    m = e.module
    args = f"{e.bottoms[0]}, {m.size}, {num(m.alpha)}, {num(m.beta)}, {num(m.k)}, {m.within}"
    return e.assign(e.call("caffe_lrn", args))


@emitter(CaffeEmbed)
def _emit_embed(e: Emit) -> list[str]:
    y = f"F.embedding({e.bottoms[0]}.long(), {e.param(0, 'weight')})"  # int(x): truncation
    if len(e.module.blobs) > 1:
        y = f"{y} + {e.param(1, 'bias')}"
    return e.assign(y)


@emitter(CaffeSPP)
def _emit_spp(e: Emit) -> list[str]:
    """One Caffe pooling per pyramid level (kernel = stride = ceil(size / 2^level)),
    flattened and concatenated; the level sizes are fixed by the net's input shape."""
    m = e.module
    if m.method not in (MAX, AVE):
        raise e.unsupported("STOCHASTIC spatial pyramid pooling")
    method = "MAX" if m.method == MAX else "AVE"
    x = e.bottoms[0]
    size = tuple(e.bottom_shapes[0][2:4])
    levels = []
    for level in range(m.pyramid_height):
        kernel, pad = spp_level_geometry((size[0], size[1]), level)
        levels.append(pool_expr(e, x, method, kernel, kernel, pad))
    if m.pyramid_height == 1:
        return e.assign(levels[0])
    return e.assign(f"torch.cat([{', '.join(p + '.flatten(1)' for p in levels)}], dim=1)")


@emitter(CaffeIm2col)
def _emit_im2col(e: Emit) -> list[str]:
    m = e.module
    g = m.geometry
    if m.axis != 1 or len(g.kernel) != 2:
        raise e.unsupported(f"Im2col over axis {m.axis} with {len(g.kernel)} spatial axes")
    top = e.top_shapes[0]
    cols = (f"F.unfold({e.bottoms[0]}, {tup(g.kernel)}, dilation={tup(g.dilation)}, "
            f"padding={tup(g.pad)}, stride={tup(g.stride)})")
    return e.assign(f"{cols}.reshape({e.bottoms[0]}.shape[0], {', '.join(map(str, top[1:]))})")
