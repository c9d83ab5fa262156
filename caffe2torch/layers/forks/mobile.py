"""Layers of the mobile-net forks: ShuffleChannel, the depthwise convolutions, ReLU6, Axpy.

* ShuffleChannel (farmingyard/ShuffleNet): channels seen as (group, C / group) and
  transposed: output channel j * group + i is input channel i * (C / group) + j.
* ConvolutionDepthwise (the MobileNet/ShuffleNet port that ShuffleNet's deploy files use):
  one k x k filter per input channel; the weight is (C, 1, kh, kw), the output has C
  channels whatever ``num_output`` and ``group`` say (the fork reads neither).
* DepthwiseConvolution (yonghenglh6/DepthwiseConvolution and its copies): a Convolution
  whose group is the number of input channels; weight (num_output, 1, kh, kw).
* ReLU6: min(max(x, 0), 6); the gradient passes only where 0 < x < 6.
* Axpy (hujie-frank/SENet): top = a * x + y with a (N, C) or (N, C, 1, 1) scaling x
  (N, C, ...) per channel.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from caffe2torch.layers.bvlc.vision import CaffeConvolution, conv_geometry
from caffe2torch.layers.emit import Emit, emitter
from caffe2torch.layers.fillers import make_filled
from caffe2torch.layers.registry import BuildContext, register_layer

# --------------------------------------------------------------------------- ShuffleChannel


class CaffeShuffleChannel(nn.Module):
    def __init__(self, group: int) -> None:
        super().__init__()
        self.group = group

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c = x.shape[0], x.shape[1]
        grouped = x.reshape(n, self.group, c // self.group, *x.shape[2:])
        return grouped.transpose(1, 2).reshape(x.shape)

    def extra_repr(self) -> str:
        return f"group={self.group}"


@register_layer("ShuffleChannel", param="shuffle_channel_param")
def build_shuffle_channel(ctx: BuildContext) -> nn.Module:
    group = int(ctx.param.group)
    shape = ctx.bottom_shapes[0]
    if group <= 0:
        raise ctx.error("group must be greater than 0")
    if len(shape) < 2 or shape[1] % group:
        raise ctx.error(f"wrong group size: {group} does not divide the channels of {shape}")
    return CaffeShuffleChannel(group)


# --------------------------------------------------------------------------- depthwise


def _depthwise(ctx: BuildContext, num_output: int) -> nn.Module:
    p = ctx.param
    shape = ctx.bottom_shapes[0]
    if len(shape) != 4:
        raise ctx.error(f"needs a 4-D (num, channels, height, width) bottom, got {shape}")
    if len(ctx.bottom_shapes) != ctx.num_tops:
        raise ctx.error("needs one top per bottom")
    channels = shape[1]
    geom = conv_geometry(ctx, p, 2)
    out = geom.output_size(shape[2:])
    if any(o <= 0 for o in out):
        raise ctx.error(f"output spatial size {out} is empty for input {tuple(shape[2:])}")
    gen = ctx.options.get("generator")
    weight = make_filled((num_output, 1, *geom.kernel), p.weight_filler, gen)
    bias = make_filled((num_output,), p.bias_filler, gen) if p.bias_term else None
    return CaffeConvolution(weight, bias, geom, channels, 1, transposed=False)


@register_layer("ConvolutionDepthwise", param="convolution_param", blobs=("weight", "bias"))
def build_convolution_depthwise(ctx: BuildContext) -> nn.Module:
    # The fork sizes everything from the bottom's channels: num_output and group are unused.
    return _depthwise(ctx, ctx.bottom_shapes[0][1] if ctx.bottom_shapes[0] else 0)


@register_layer(
    "DepthwiseConvolution",
    param="convolution_param",
    bottoms=(1, None),
    tops=(1, None),
    blobs=("weight", "bias"),
)
def build_depthwise_convolution(ctx: BuildContext) -> nn.Module:
    p = ctx.param
    channels = ctx.bottom_shapes[0][1]
    if p.HasField("group") and p.group not in (1, channels):
        raise ctx.error(
            f"group ({p.group}) must be the number of input channels ({channels})",
            hint="a depthwise convolution has one group per channel",
        )
    if p.num_output <= 0 or p.num_output % channels:
        raise ctx.error(
            f"num_output ({p.num_output}) must be a positive multiple of the input "
            f"channels ({channels})"
        )
    return _depthwise(ctx, int(p.num_output))


# --------------------------------------------------------------------------- ReLU6


class CaffeReLU6(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        clipped = torch.clamp(x, 0.0, 6.0)
        # Same values; the gradient flows only through the open interval (0, 6).
        return torch.where((x > 0) & (x < 6), x, clipped.detach())


@register_layer("ReLU6")
def build_relu6(ctx: BuildContext) -> nn.Module:
    return CaffeReLU6()


# --------------------------------------------------------------------------- Axpy


class CaffeAxpy(nn.Module):
    def forward(self, a: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        scale = a.reshape(a.shape[0], a.shape[1], *([1] * (x.dim() - 2)))
        return y + scale * x  # caffe_axpy: y += a * x


@register_layer("Axpy", bottoms=3)
def build_axpy(ctx: BuildContext) -> nn.Module:
    a, x, y = (tuple(s) for s in ctx.bottom_shapes)
    if a[:2] != x[:2]:
        raise ctx.error(f"the scale {a} and x {x} must agree in num and channels")
    if len(a) == 4 and a[2:] != (1, 1):
        raise ctx.error(f"the scale must be (N, C, 1, 1), got {a}")
    if math.prod(a) != a[0] * a[1]:
        raise ctx.error(f"the scale must hold one value per (num, channel), got {a}")
    if x != y:
        raise ctx.error(f"x {x} and y {y} must have the same shape")
    return CaffeAxpy()


# ----------------------------------------------------------------------------- standalone source
# convert's emitters for the module classes above (caffe2torch.layers.emit)


@emitter(CaffeShuffleChannel)
def _emit_shuffle(e: Emit) -> list[str]:
    shape = e.bottom_shapes[0]
    g = e.module.group
    x = e.bottoms[0]
    rest = ", ".join(map(str, shape[2:]))
    grouped = f"{x}.reshape({x}.shape[0], {g}, {shape[1] // g}{', ' + rest if rest else ''})"
    return e.assign(f"{grouped}.transpose(1, 2).reshape({x}.shape)")


@emitter(CaffeReLU6)
def _emit_relu6(e: Emit) -> list[str]:
    return e.assign(f"torch.clamp({e.bottoms[0]}, 0.0, 6.0)")


@emitter(CaffeAxpy)
def _emit_axpy(e: Emit) -> list[str]:
    a, x, y = e.bottoms
    ones = ", 1" * (len(e.bottom_shapes[1]) - 2)
    return e.assign(f"{y} + {a}.reshape({a}.shape[0], {a}.shape[1]{ones}) * {x}")
