"""Window geometry along one spatial axis: the output-size formulas of Caffe's convolution,
deconvolution and pooling, written once for the builder (layers/bvlc/vision.py), the
shape pass (ir/shapes.py: the linter, ``info``) and export; callers with an unknown size
(None) skip the axis."""

from __future__ import annotations

import math
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
