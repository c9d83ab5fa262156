"""``--fold-bn``: BatchNorm (and the Scale right after it) folded into the convolution or
inner product before it, in a deploy view made for the export.

Caffe's BatchNorm with global statistics is y = (x - m) / sqrt(v + eps) with m, v its
blobs times the scale factor (1 / blob 2, 0 when blob 2 is 0); the Scale after it is
y * gamma + beta. Per output channel c of the layer before them, with s_c = gamma_c /
sqrt(v_c + eps): W'_c = W_c * s_c and b'_c = (b_c - m_c) * s_c + beta_c. The folded
layers then pass their bottom through (no ONNX node).

Folded only where it is exact: the convolution (not Deconvolution) or inner product has
one bottom and one top, on axis 1; its top is read by the BatchNorm alone and is not an
output of the export; the BatchNorm uses global statistics; the Scale (if folded) has
per-channel learned scale on axis 1 and reads the BatchNorm's top alone.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from caffe2torch.export.static import replace_module
from caffe2torch.graph import CaffeNet


class FoldedAway(nn.Module):
    """A layer folded into the one before it: its bottom, unchanged."""

    def __init__(self) -> None:
        super().__init__()
        self.blobs = nn.ParameterList()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def _sole_reader(net: CaffeNet, pos: int) -> int | None:
    """Position of the one layer that reads the single top of layer ``pos``."""
    tops = net.ir.layers[pos].tops
    if len(tops) != 1:
        return None
    readers = net.ir.consumers.get(tops[0], [])
    return readers[0][0] if len(readers) == 1 else None


def fold_batch_norm(net: CaffeNet, outputs: Sequence[str]) -> list[str]:
    """Fold every BatchNorm (+ Scale) the module doc allows, in place; returns the names of
    the layers folded away."""
    from caffe2torch.layers.bvlc.normalization import CaffeBatchNorm, CaffeScale, scaled_stats
    from caffe2torch.layers.bvlc.vision import CaffeConvolution, CaffeInnerProduct

    ir, modules = net.ir, net._modules_in_order
    keep = {ir.final(name) for name in outputs}  # the output blobs' last versions
    folded: list[str] = []
    for pos, layer in enumerate(ir.layers):
        conv = modules[pos]
        if isinstance(conv, CaffeConvolution):
            if conv.transposed or conv.axis != 1:
                continue
        elif not (isinstance(conv, CaffeInnerProduct) and conv.axis == 1
                  and not conv.transpose):
            continue
        if len(layer.bottoms) != 1 or len(layer.tops) != 1 or layer.tops[0] in keep:
            continue
        bn_pos = _sole_reader(net, pos)
        bn = modules[bn_pos] if bn_pos is not None else None
        if bn_pos is None or not isinstance(bn, CaffeBatchNorm):
            continue
        if bn.use_global_stats is False or bn.training:
            continue
        scale_pos = _sole_reader(net, bn_pos)
        scale = modules[scale_pos] if scale_pos is not None else None
        if not (isinstance(scale, CaffeScale) and scale_pos is not None
                and len(ir.layers[scale_pos].bottoms) == 1
                and scale.can_fold(bn) and ir.layers[bn_pos].tops[0] not in keep):
            scale_pos, scale = None, None
        weight = conv.blobs[0]
        channels = weight.shape[0]
        if bn.channels != channels:
            continue
        with torch.no_grad():
            mean, var = scaled_stats(*bn.blobs)
            s = 1.0 / torch.sqrt(var + bn.eps)
            beta = torch.zeros_like(s)
            if scale is not None:
                s = s * scale.blobs[0]
                if scale.bias_term:
                    beta = scale.blobs[1].detach().clone()
            bias = conv.blobs[1].detach() if len(conv.blobs) > 1 else torch.zeros_like(s)
            new_w = weight * s.reshape(-1, *([1] * (weight.dim() - 1)))
            new_b = (bias - mean) * s + beta
            weight.copy_(new_w)
            if len(conv.blobs) > 1:
                conv.blobs[1].copy_(new_b)
            else:
                conv.blobs.append(nn.Parameter(new_b, requires_grad=False))
        for p in (bn_pos, scale_pos):
            if p is not None:
                replace_module(net, p, FoldedAway())
                folded.append(ir.layers[p].name)
    return folded
