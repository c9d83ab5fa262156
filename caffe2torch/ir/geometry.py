"""Window geometry: the output-size formulas of Caffe's convolution, deconvolution and
pooling, and the one reader of ConvolutionParameter and PoolingParameter (with Caffe's
LayerSetUp checks), written once for the builder (layers/bvlc/vision.py), the shape pass
(ir/shapes.py: the linter, ``info``) and export. A reader returns the geometry or the
problem; the builder raises the problem, the shape pass leaves the tops unknown. Sizes that
are not known (None) stay unknown."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


def kernel_extent(kernel: int, dilation: int = 1) -> int:
    """The span of a dilated kernel: dilation (kernel - 1) + 1."""
    return dilation * (kernel - 1) + 1


def conv_out(size: int, kernel: int, stride: int, pad: int, dilation: int = 1) -> int:
    """BaseConvolutionLayer::compute_output_shape (ConvolutionLayer):
    (in + 2 pad - extent) / stride + 1, rounded down."""
    return (size + 2 * pad - kernel_extent(kernel, dilation)) // stride + 1


def deconv_out(size: int, kernel: int, stride: int, pad: int, dilation: int = 1) -> int:
    """DeconvolutionLayer::compute_output_shape: stride (in - 1) + extent - 2 pad."""
    return stride * (size - 1) + kernel_extent(kernel, dilation) - 2 * pad


def pooled_size(size: int, kernel: int, stride: int, pad: int, ceil_mode: bool = True) -> int:
    """Caffe's pooled output size along one axis (PoolingLayer::Reshape).

    ceil (or floor) of (size + 2 pad - kernel) / stride, plus 1; with padding, one window
    less when the last would start inside the padding (at or after size + pad)."""
    ratio = (size + 2 * pad - kernel) / stride
    out = (math.ceil(ratio) if ceil_mode else math.floor(ratio)) + 1
    if pad and (out - 1) * stride >= size + pad:
        out -= 1
    return out


def pool_ceil_mode(p: Any) -> bool:
    """Whether a PoolingParameter rounds its output size up: round_mode CEIL (BVLC's
    default); forks spell FLOOR as ``ceil_mode: false``, which wins when written."""
    fields = p.DESCRIPTOR.fields_by_name
    if "ceil_mode" in fields and p.HasField("ceil_mode"):
        return bool(p.ceil_mode)
    return bool(p.round_mode != p.FLOOR)


Dim = int | None
Pair = tuple[int, int]


@dataclass(frozen=True)
class ParamProblem:
    """Why a layer's parameter block cannot be read: the builder raises ``message`` (with
    ``hint``) as the layer's error; the shape pass leaves the layer's tops unknown.
    ``field``: the parameter block the problem is in (``convolution_param``)."""

    message: str
    field: str
    hint: str | None = None


class _Refused(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


# --------------------------------------------------------------------------- convolution


@dataclass(frozen=True)
class ConvGeometry:
    """Kernel, stride, pad and dilation per spatial axis (Caffe's BaseConvolutionLayer)."""

    kernel: tuple[int, ...]
    stride: tuple[int, ...]
    pad: tuple[int, ...]
    dilation: tuple[int, ...]

    def output_size(self, sizes: Sequence[int]) -> tuple[int, ...]:
        """Convolution output size: (in + 2 pad - (dilation (kernel - 1) + 1)) / stride + 1."""
        return tuple(
            conv_out(n, k, s, p, d)
            for n, k, s, p, d in zip(sizes, self.kernel, self.stride, self.pad, self.dilation)
        )

    def deconv_output_size(self, sizes: Sequence[int]) -> tuple[int, ...]:
        """Deconvolution output size: stride (in - 1) + dilation (kernel - 1) + 1 - 2 pad."""
        return tuple(
            deconv_out(n, k, s, p, d)
            for n, k, s, p, d in zip(sizes, self.kernel, self.stride, self.pad, self.dilation)
        )

    def output_dims(self, sizes: Sequence[Dim], transposed: bool = False) -> tuple[Dim, ...]:
        """:meth:`output_size` (or the deconvolution's) where an unknown size (None) stays
        unknown."""
        size = deconv_out if transposed else conv_out
        return tuple(
            None if n is None else size(n, k, s, p, d)
            for n, k, s, p, d in zip(sizes, self.kernel, self.stride, self.pad, self.dilation)
        )


def _per_axis(p: Any, name: str, n: int, default: int | None) -> tuple[int, ...]:
    """``name`` (repeated) once or once per spatial axis, or ``name_h``/``name_w`` for 2-D."""
    repeated = "kernel_size" if name == "kernel" else name
    values = list(getattr(p, repeated))
    if p.HasField(f"{name}_h") or p.HasField(f"{name}_w"):
        if n != 2:
            raise _Refused(f"{name}_h & {name}_w can only be used for 2-D convolution")
        if values:
            raise _Refused(f"either {repeated} or {name}_h/{name}_w should be given, not both")
        return int(getattr(p, f"{name}_h")), int(getattr(p, f"{name}_w"))
    allowed = (1, n) if default is None else (0, 1, n)
    if len(values) not in allowed:
        raise _Refused(
            f"{repeated} must be given once or once per spatial dimension "
            f"({len(values)} given, {n} spatial dims)"
        )
    if not values:
        assert default is not None
        return (default,) * n
    return tuple(int(values[0 if len(values) == 1 else i]) for i in range(n))


def _dilation(p: Any, n: int, hole: int | None) -> tuple[int, ...]:
    values = list(p.dilation)
    if hole is not None and not values:  # DeepLab v1's name for the dilation (im2col "hole")
        values = [int(hole)]
    if len(values) not in (0, 1, n):
        raise _Refused(
            f"dilation must be given once or once per spatial dimension "
            f"({len(values)} given, {n} spatial dims)"
        )
    if not values:
        return (1,) * n
    return tuple(int(values[0 if len(values) == 1 else i]) for i in range(n))


def read_conv_geometry(
    p: Any, n: int, hole: int | None = None, field: str = "convolution_param"
) -> ConvGeometry | ParamProblem:
    """A ConvolutionParameter read for ``n`` spatial axes with the checks of
    BaseConvolutionLayer::LayerSetUp, or the first problem. ``hole``: DeepLab v1's
    ``hole`` field (its dilation) when the file writes it; ``field``: the block's name."""
    try:
        if n == 0:
            if len(p.kernel_size) > 1:
                raise _Refused("kernel_size must be given once for 0 spatial dimensions")
            return ConvGeometry((), (), (), ())
        geom = ConvGeometry(
            kernel=_per_axis(p, "kernel", n, None),
            stride=_per_axis(p, "stride", n, 1),
            pad=_per_axis(p, "pad", n, 0),
            dilation=_dilation(p, n, hole),
        )
        if any(k <= 0 for k in geom.kernel):
            raise _Refused(f"kernel dimensions must be > 0, got {geom.kernel}")
        if any(s <= 0 for s in geom.stride):
            raise _Refused(f"stride dimensions must be > 0, got {geom.stride}")
        if any(d <= 0 for d in geom.dilation):
            raise _Refused(f"dilation must be > 0, got {geom.dilation}")
    except _Refused as why:
        return ParamProblem(why.message, field)
    return geom


# --------------------------------------------------------------------------- pooling


@dataclass(frozen=True)
class PoolWindow:
    """A PoolingParameter's windows: ``kernel`` None for global pooling (the window is the
    input's H x W), stride, pad and the rounding of the output size."""

    kernel: Pair | None
    stride: Pair
    pad: Pair
    ceil_mode: bool

    def output_dims(self, size: Sequence[Dim]) -> tuple[Dim, Dim]:
        """Pooled H x W of an H x W input (None where the size is unknown)."""
        if self.kernel is None:
            return 1, 1
        out = [None if s is None else pooled_size(s, k, st, p, self.ceil_mode)
               for s, k, st, p in zip(size, self.kernel, self.stride, self.pad)]
        return out[0], out[1]


def _pool_pair(p: Any, name: str, default: int | None) -> Pair | None:
    repeated = "kernel_size" if name == "kernel" else name
    has_hw = p.HasField(f"{name}_h") or p.HasField(f"{name}_w")
    if p.HasField(repeated):
        if has_hw:
            raise _Refused(f"{repeated} OR {name}_h and {name}_w may be given, not both")
        v = int(getattr(p, repeated))
        return v, v
    if has_hw:
        if not (p.HasField(f"{name}_h") and p.HasField(f"{name}_w")):
            raise _Refused(f"{name}_h and {name}_w must be given together")
        return int(getattr(p, f"{name}_h")), int(getattr(p, f"{name}_w"))
    if default is None:
        return None
    return default, default


def check_pool_window(kernel: Pair, stride: Pair, pad: Pair) -> str | None:
    """What PoolingLayer::LayerSetUp refuses in a window (kernel and stride > 0, 0 <= pad <
    kernel), or None."""
    for name, pair in (("kernel", kernel), ("stride", stride)):
        if min(pair) <= 0:
            return f"pooling {name} must be > 0, got {pair}"
    if pad[0] >= kernel[0] or pad[1] >= kernel[1] or min(pad) < 0:
        return f"pooling pad {pad} must be >= 0 and smaller than kernel {kernel}"
    return None


def read_pool_window(p: Any, field: str = "pooling_param") -> PoolWindow | ParamProblem:
    """A PoolingParameter read with the checks of PoolingLayer::LayerSetUp that do not need
    the input size, or the first problem."""
    stochastic = p.pool == p.STOCHASTIC
    try:
        kernel = _pool_pair(p, "kernel", None)
        pad = _pool_pair(p, "pad", 0)
        stride = _pool_pair(p, "stride", 1)
        assert pad is not None and stride is not None
        if p.global_pooling:
            if kernel is not None:
                raise _Refused("with global_pooling: true the kernel size cannot be given")
            if pad != (0, 0) or stride != (1, 1):
                raise _Refused(
                    "with global_pooling: true only pad = 0 and stride = 1 are allowed")
        elif kernel is None:
            raise _Refused(
                "needs kernel_size (or kernel_h and kernel_w), or global_pooling: true")
        if stochastic and pad != (0, 0):
            raise _Refused("STOCHASTIC pooling takes no padding (Caffe pads only AVE and MAX)")
        if kernel is not None:
            refused = check_pool_window(kernel, stride, pad)
            if refused:
                raise _Refused(refused)
    except _Refused as why:
        return ParamProblem(why.message, field)
    return PoolWindow(kernel, stride, pad, pool_ceil_mode(p))
