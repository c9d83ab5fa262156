"""Faster CPU routes for layers whose default torch kernel is slow at Caffe's shapes.

Each route gives the numbers of the plain route it replaces (max pooling: bit for bit;
LRN: Caffe's own forward and backward formulas) and is taken only in eager CPU float32
execution (:func:`eager_cpu`): tracing for ONNX, torch.compile and other devices keep the
plain ops, which export and compile as before.

* Max pooling: torch's NCHW max-pool kernel on CPU works one plane at a time, ~8x slower
  than its channels-last kernel, which vectorises over channels. The route pools a
  channels-last copy, returns an NCHW top, keeps the argmax (the same h * W + w index per
  plane) and scatters the top diff back as PoolingLayer::Backward_cpu does.
* LRN across channels: LRNLayer::CrossChannelForward_cpu / CrossChannelBackward_cpu, a
  window sum over channels written as ``size`` shifted adds (torch's avg_pool3d route
  and autograd through pow take ~3x longer), with the backward Caffe writes by hand.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

_PLAIN_TYPES = (torch.Tensor, nn.Parameter)


def eager_cpu(x: torch.Tensor) -> bool:
    """Whether ``x`` runs in plain eager CPU float32 (not traced, compiled or fake)."""
    return (type(x) in _PLAIN_TYPES and x.device.type == "cpu" and x.dtype == torch.float32
            and not torch.jit.is_tracing() and not torch.compiler.is_compiling())


# --------------------------------------------------------------------------- max pooling


class _MaxPoolChannelsLast(torch.autograd.Function):
    """Caffe's MAX pooling of (N, C, H, W) ``x`` with torch's own window rule (the
    geometries where ``ceil_mode`` reproduces Caffe's output size)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, kernel: tuple[int, int], stride: tuple[int, int],
                pad: tuple[int, int], ceil_mode: bool) -> tuple[torch.Tensor, torch.Tensor]:
        nhwc = x.contiguous(memory_format=torch.channels_last)
        top, index = torch.ops.aten.max_pool2d_with_indices(
            nhwc, list(kernel), list(stride), list(pad), [1, 1], ceil_mode)
        index = index.contiguous()
        ctx.save_for_backward(index)
        ctx.input_shape = x.shape
        ctx.mark_non_differentiable(index)
        return top.contiguous(), index

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor, _: Any) -> tuple[Any, ...]:
        (index,) = ctx.saved_tensors
        n, c, h, w = ctx.input_shape
        planes = n * c
        # PoolingLayer::Backward_cpu: each top diff added to its argmax, in top order
        bottom = grad.new_zeros(ctx.input_shape)
        bottom.view(planes, h * w).scatter_add_(
            1, index.view(planes, -1), grad.contiguous().view(planes, -1))
        return bottom, None, None, None, None


def max_pool_channels_last(
    x: torch.Tensor, kernel: tuple[int, int], stride: tuple[int, int],
    pad: tuple[int, int], ceil_mode: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(top, argmax index h * W + w) of torch's max pooling, computed channels-last."""
    if x.requires_grad and torch.is_grad_enabled():
        top, index = _MaxPoolChannelsLast.apply(x, kernel, stride, pad, ceil_mode)
        return top, index
    nhwc = x.contiguous(memory_format=torch.channels_last)
    top, index = torch.ops.aten.max_pool2d_with_indices(
        nhwc, list(kernel), list(stride), list(pad), [1, 1], ceil_mode)
    return top.contiguous(), index


# --------------------------------------------------------------------------- Convolution

# A 1x1 convolution with stride s and no padding reads every s-th pixel: oneDNN's strided
# 1x1 kernels (ResNet's projections) are slower than subsampling first and convolving with
# stride 1 (same windows and products; idle, fwd+bwd at ResNet-50's shapes, batch 2:
# 256 -> 128 channels at 56x56 15.9 -> 4.3 ms, 256 -> 512 24.5 -> 19.9 ms).


def strided_pointwise(x: torch.Tensor, kernel: tuple[int, ...], stride: tuple[int, ...],
                      pad: tuple[int, ...]) -> bool:
    """Whether a convolution of ``x`` is 1x1, unpadded and strided (dilation is moot)."""
    return (eager_cpu(x) and all(k == 1 for k in kernel) and not any(pad)
            and any(s > 1 for s in stride))


def subsample(x: torch.Tensor, stride: tuple[int, ...]) -> torch.Tensor:
    """The pixels a 1x1 convolution with ``stride`` reads: rows and columns 0, s, 2s, ...
    (in ``x``'s layout: a channels-last net stays channels-last)."""
    layout = torch.channels_last if (x.is_contiguous(memory_format=torch.channels_last)
                                     and not x.is_contiguous()) else torch.contiguous_format
    return x[:, :, ::stride[0], ::stride[1]].contiguous(memory_format=layout)


# --------------------------------------------------------------------------- LRN


def _channel_window_sum(values: torch.Tensor, before: int, after: int,
                        start: float | None = None) -> torch.Tensor:
    """For each channel c, the sum of ``values`` over channels c - before .. c + after
    that exist (Caffe's zero padding adds nothing), plus ``start`` when given."""
    total = values + start if start is not None else values.clone()
    for offset in range(1, before + 1):
        total[:, offset:] += values[:, :-offset]
    for offset in range(1, after + 1):
        total[:, :-offset] += values[:, offset:]
    return total


def lrn_scale(x: torch.Tensor, size: int, alpha: float, k: float) -> torch.Tensor:
    """LRNLayer's ``scale_``: k + alpha / size * sum of x^2 over the ``size`` zero-padded
    channels centred on each channel (CrossChannelForward_cpu)."""
    pre_pad = (size - 1) // 2
    squares = x * x
    squares.mul_(alpha / size)
    return _channel_window_sum(squares, pre_pad, size - 1 - pre_pad, k)


class _CrossChannelLRN(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, size: int, alpha: float, beta: float,
                k: float) -> torch.Tensor:
        scale = lrn_scale(x, size, alpha, k)
        top = scale.pow(-beta).mul_(x)
        ctx.save_for_backward(x, top, scale)
        ctx.settings = (size, alpha, beta)
        return top

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[Any, ...]:
        x, top, scale = ctx.saved_tensors
        size, alpha, beta = ctx.settings
        # CrossChannelBackward_cpu: diff * scale^-beta
        #   - 2 alpha beta / size * x * (sum over the window of diff * top / scale)
        ratio = grad * top
        ratio.div_(scale)
        # channel c gathers the ratios of the tops whose windows hold it
        inverse_pre_pad = size - (size + 1) // 2
        accumulated = _channel_window_sum(ratio, inverse_pre_pad, size - 1 - inverse_pre_pad)
        bottom = scale.pow(-beta).mul_(grad)
        bottom.add_(accumulated.mul_(x), alpha=-2.0 * alpha * beta / size)
        return bottom, None, None, None, None


def cross_channel_lrn(x: torch.Tensor, size: int, alpha: float, beta: float,
                      k: float) -> torch.Tensor:
    """Caffe's LRN ACROSS_CHANNELS of (N, C, H, W) ``x``."""
    if x.requires_grad and torch.is_grad_enabled():
        top: torch.Tensor = _CrossChannelLRN.apply(x, size, alpha, beta, k)
        return top
    return lrn_scale(x, size, alpha, k).pow_(-beta).mul_(x)


# --------------------------------------------------------------------------- InnerProduct

# A big weight at a small batch (Caffe's fc6 at batch 4) is read once per product, so the
# product runs at memory speed, but torch's CPU GEMM for a (2-4 x K) @ (K x N) product
# reads it several times. For 2 to SKINNY_ROWS rows, the products are written so that the
# weight is streamed once: the forward as y^T = W x^T (from SKINNY_WEIGHT weight elements),
# the input gradient as matrix-vector products over row blocks of W that stay in cache for
# every row (from SKINNY_GRAD_WEIGHT elements). Measured on an idle 2-core machine
# (docs/benchmarks.md): forward 1.25-2.2x, input gradient 1.1-1.4x of torch's at 2-4 rows;
# at 8 rows and beyond, and for the input gradient of smaller weights, torch's is faster.
SKINNY_ROWS = 4
SKINNY_WEIGHT = 1 << 20
SKINNY_GRAD_WEIGHT = 1 << 24
_ROW_BLOCK = 128


def skinny(x2: torch.Tensor, weight: torch.Tensor, min_weight: int | None = None) -> bool:
    """Whether ``x2 @ weight.T`` (x2 flattened to rows) takes the small-batch route
    (``min_weight``: SKINNY_WEIGHT; the input gradient asks with SKINNY_GRAD_WEIGHT)."""
    least = SKINNY_WEIGHT if min_weight is None else min_weight
    return (eager_cpu(x2) and eager_cpu(weight) and x2.dim() == 2
            and 2 <= x2.shape[0] <= SKINNY_ROWS and weight.numel() >= least
            and weight.is_contiguous())


def skinny_linear(x2: torch.Tensor, weight: torch.Tensor,
                  bias: torch.Tensor | None) -> torch.Tensor:
    """``F.linear(x2, weight, bias)`` for a few rows: the weight streamed once."""
    top = torch.mm(weight, x2.t()).t().contiguous()
    return top if bias is None else top.add_(bias)


def skinny_input_grad(grad: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """``grad @ weight`` for a few rows of ``grad``: blocks of weight rows, each used for
    every row while it is in cache."""
    rows, outputs = grad.shape
    bottom = grad.new_zeros(rows, weight.shape[1])
    for start in range(0, outputs, _ROW_BLOCK):
        block = weight[start:start + _ROW_BLOCK].t()
        for r in range(rows):
            bottom[r].addmv_(block, grad[r, start:start + _ROW_BLOCK])
    return bottom
