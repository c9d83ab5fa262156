"""``Local`` (V1 enum ``LOCAL``): the locally connected layer of the BVLC/caffe pull request
(include/caffe/layers/local_layer.hpp): a convolution whose filter differs at every output
position.

Its options (``local_param``: num_output, kernel_size, stride 1, pad 0, bias_term true,
weight_filler, bias_filler) are not in our schema: they come from the kept fields of the
file or from the fork's schema given with ``proto=``. Square kernels only, as in the fork.
Blobs: weight (num_output, 1, K, N) with K = channels * kernel^2 (im2col's row order:
channel, then kernel row, then kernel column) and N = out_h * out_w; bias (1, 1,
num_output, N). top[n, m, p] = sum_k col[n, k, p] * weight[m, 0, k, p] + bias[0, 0, m, p],
out = (in + 2 pad - kernel) / stride + 1 (floor). The fork's backward is the derivative of
that (autograd): dW[m, 0, k, p] = sum_n col[n, k, p] dtop[n, m, p], dbias = sum_n dtop,
dbottom = col2im(sum_m weight[m, 0, k, p] dtop[n, m, p]).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from caffe2torch.ir.geometry import conv_out
from caffe2torch.layers.fillers import make_filled
from caffe2torch.layers.registry import BuildContext, register_layer
from caffe2torch.proto import caffe_pb2


class CaffeLocal(nn.Module):
    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None, kernel: int,
                 stride: int, pad: int, out_hw: tuple[int, int]) -> None:
        super().__init__()
        blobs = [nn.Parameter(weight)] + ([nn.Parameter(bias)] if bias is not None else [])
        self.blobs = nn.ParameterList(blobs)
        self.kernel, self.stride, self.pad = kernel, stride, pad
        self.out_hw = out_hw

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        m = self.blobs[0].shape[0]
        if x.device.type == "meta":
            return x.new_empty((n, m, *self.out_hw))
        col = F.unfold(x, self.kernel, padding=self.pad, stride=self.stride)  # n, K, N
        w = self.blobs[0][:, 0]  # m, K, N
        top = (col.unsqueeze(1) * w.unsqueeze(0)).sum(dim=2)  # n, m, N
        if len(self.blobs) > 1:
            top = top + self.blobs[1][0, 0].unsqueeze(0)
        return top.reshape(n, m, *self.out_hw)

    def extra_repr(self) -> str:
        return (f"num_output={self.blobs[0].shape[0]}, kernel={self.kernel}, "
                f"stride={self.stride}, pad={self.pad}")


def _filler(value: Any) -> caffe_pb2.FillerParameter:
    msg = caffe_pb2.FillerParameter()
    for key, v in (value or {}).items():
        if key in msg.DESCRIPTOR.fields_by_name and not isinstance(v, (dict, list)):
            setattr(msg, key, v)
    return msg


@register_layer("Local", bottoms=1, tops=1, blobs=("weight", "bias"), aliases=("LOCAL",))
def build_local(ctx: BuildContext) -> nn.Module:
    p = dict(ctx.extra_field("local_param", {}) or {})
    shape = ctx.bottom_shapes[0]
    if len(shape) != 4:
        raise ctx.error(f"needs a 4-D (num, channels, height, width) bottom, got {shape}")
    num_output = int(p.get("num_output", 0))
    kernel = int(p.get("kernel_size", 0))
    stride, pad = int(p.get("stride", 1)), int(p.get("pad", 0))
    if num_output <= 0:
        raise ctx.error("local_param.num_output must be positive")
    if kernel <= 0 or stride <= 0 or pad < 0:
        raise ctx.error("local_param needs kernel_size > 0, stride > 0 and pad >= 0")
    _, c, h, w = shape
    if h < kernel or w < kernel:
        raise ctx.error(f"the bottom ({h} x {w}) is smaller than the kernel ({kernel})")
    out_hw = (conv_out(h, kernel, stride, pad), conv_out(w, kernel, stride, pad))
    k, n = c * kernel * kernel, out_hw[0] * out_hw[1]
    gen = ctx.options.get("generator")
    weight = make_filled((num_output, 1, k, n), _filler(p.get("weight_filler")), gen)
    bias = None
    if p.get("bias_term", True):
        bias = make_filled((1, 1, num_output, n), _filler(p.get("bias_filler")), gen)
    return CaffeLocal(weight, bias, kernel, stride, pad, out_hw)
