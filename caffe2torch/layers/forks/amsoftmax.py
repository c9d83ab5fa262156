"""happynear/caffe-windows' ``ChannelScale`` (AM-Softmax: the scores times the feature norm).

Bottom 0 is read as the legacy (num, channels, height, width) blob, bottom 1 holds one scale
per item and spatial position (num * height * width values, any shape):
top[n, c, s] = x[n, c, s] * scale[n, s] (ChannelScaleLayer::Forward_cpu/gpu). The fork's
flags change the two directions separately:

* ``do_forward: false``: the top is a copy of bottom 0, yet the backward below still runs
  with the scale (the fork never looks at the flag there).
* ``do_backward_feature``: bottom 0's gradient is scale * dtop (false: dtop unchanged).
* ``do_backward_scale``: bottom 1's gradient is sum_c x * dtop (false: zero).

With every flag at its default this is the plain product and autograd's gradient is the
fork's; otherwise a custom Function gives the fork's gradient. ``global_scale`` (a running
scale blob that replaces bottom 1 in the forward, updated from mean |bottom 1| by the fork's
GPU code only, with a feature gradient that still uses bottom 1) is refused with a message.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from caffe2torch.ir.shapes import channel_scale_mismatch, channel_scale_shape, known
from caffe2torch.layers.emit import Emit, emitter
from caffe2torch.layers.portable import portable
from caffe2torch.layers.registry import BuildContext, Shape, register_layer


@portable
def channel_scale(x: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """x[n, c, s] * scale[n, s] over the legacy (num, channels, height * width) view of x."""
    num = x.shape[0]
    channels = x.shape[1] if x.dim() > 1 else 1
    return (x.reshape(num, channels, -1) * scale.reshape(num, 1, -1)).reshape(x.shape)


class _ChannelScaleFunction(torch.autograd.Function):
    """The fork's forward and backward when a flag leaves the defaults."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, scale: torch.Tensor, flags: tuple[bool, bool, bool]
                ) -> torch.Tensor:
        ctx.save_for_backward(x, scale)
        ctx.flags = flags
        return channel_scale(x, scale) if flags[0] else x.clone()

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        x, scale = ctx.saved_tensors
        _, feature, by_scale = ctx.flags
        dx = channel_scale(grad, scale) if feature else grad.clone()
        num = x.shape[0]
        channels = x.shape[1] if x.dim() > 1 else 1
        if by_scale:
            per = (x.reshape(num, channels, -1) * grad.reshape(num, channels, -1)).sum(dim=1)
            dscale = per.reshape(scale.shape)
        else:
            dscale = torch.zeros_like(scale)
        return dx, dscale, None


class CaffeChannelScale(nn.Module):
    """happynear's ChannelScale: see the module docstring."""

    def __init__(self, do_forward: bool, backward_feature: bool, backward_scale: bool) -> None:
        super().__init__()
        self.flags = (do_forward, backward_feature, backward_scale)

    def infer_shapes(self, shapes: list[Shape]) -> list[Shape]:
        return [known(channel_scale_shape(shapes[0]))]

    def forward(self, x: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        if self.flags == (True, True, True):
            return channel_scale(x, scale)
        if torch.is_grad_enabled() and (x.requires_grad or scale.requires_grad):
            return _ChannelScaleFunction.apply(x, scale, self.flags)
        return channel_scale(x, scale) if self.flags[0] else x


@register_layer("ChannelScale", param="channel_scale_param", bottoms=2)
def build_channel_scale(ctx: BuildContext) -> nn.Module:
    p = ctx.param
    data, scale = ctx.bottom_shapes
    if p.global_scale:
        raise ctx.error(
            "global_scale: true is not implemented: the fork's running scale blob is updated "
            "from mean |bottom 1| by its GPU code and only clamped by its CPU code, and its "
            "feature gradient still uses bottom 1",
            hint="leave global_scale out (one scale per item from bottom 1), or implement it "
                 "as a plug-in layer",
        )
    problem = channel_scale_mismatch(tuple(data), tuple(scale))
    if problem is not None:
        raise ctx.error(problem, hint="give bottom 1 one value per item and spatial position "
                                      "of bottom 0 (the feature norm, num x 1 x H x W)")
    return CaffeChannelScale(bool(p.do_forward), bool(p.do_backward_feature),
                             bool(p.do_backward_scale))


@emitter(CaffeChannelScale)
def _emit_channel_scale(e: Emit) -> list[str]:
    """happynear's ChannelScale: x[n, c, s] * scale[n, s] (or x when do_forward is false)."""
    x, scale = e.bottoms
    if not e.module.flags[0]:
        return [f"# {e.layer.name}: ChannelScale with do_forward: false copies its input",
                *e.assign(x)]
    return e.assign(e.call("channel_scale", f"{x}, {scale}"))
