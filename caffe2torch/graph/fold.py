"""Convolution + BatchNorm (+ Scale) folded into one convolution, for inference.

With global statistics (TEST phase, or ``use_global_stats: true``) BatchNorm is
``(y - mean) / sqrt(var + eps)`` per channel and Scale ``gamma * z + beta``: both are an
affine map per output channel of the convolution before them, so the three layers are one
convolution with ``W' = W * s`` and ``b' = (b - mean) * s + beta``, ``s = gamma / sqrt(var
+ eps)``: one pass over the activations instead of three (or two with the BatchNorm +
Scale pair already run as one ``batch_norm``).

A build option, off by default (``load_net(..., fold_conv_bn=True)``, or
:func:`fold_conv_bn` on a built net): the result differs from Caffe's by float rounding
(the product is taken in another order), and the intermediate blobs (the convolution's
and the BatchNorm's tops) are not computed, so a chain is folded only when nothing else
reads them and they are not asked for (``net(..., blobs=[...])`` builds its graph without
folding those). The net's param blobs are unchanged (a caffemodel saved from it is
Caffe's); the folded weights are derived from them and kept until one of them changes
(its version counter or storage, as BatchNorm's cached statistics: an in-place write
through ``p.data`` is not seen, ``p.copy_`` under ``no_grad`` and ``copy_from`` are).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import nn

from caffe2torch.ir.graph import BlobRef, NetIR

_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}


class ConvNormFold(nn.Module):
    """Runs a Convolution, the BatchNorm after it and optionally a Scale as one
    convolution. The three layer modules are referenced, not owned (the net's root owns
    them), so parameters and state_dict list them once."""

    _parts: tuple[Any, Any, Any]  # (Convolution, BatchNorm, Scale or None)
    _cache: tuple[tuple[Any, ...], tuple[torch.Tensor, torch.Tensor]] | None

    def __init__(self, conv: nn.Module, bn: nn.Module, scale: nn.Module | None) -> None:
        super().__init__()
        self.__dict__["_parts"] = (conv, bn, scale)
        self.__dict__["_cache"] = None

    def forget_param_cache(self) -> None:
        """Drop the folded weights and the BatchNorm's statistics they came from (see
        CaffeBatchNorm.forget_param_cache)."""
        self.__dict__["_cache"] = None
        self._parts[1].forget_param_cache()

    def _uses_global_stats(self) -> bool:
        bn = self._parts[1]
        return bool(not bn.training if bn.use_global_stats is None else bn.use_global_stats)

    def _folded(self) -> tuple[torch.Tensor, torch.Tensor]:
        conv, bn, scale = self._parts
        tensors = [*conv.blobs, *bn.blobs, *(scale.blobs if scale is not None else ())]
        if torch.is_grad_enabled() or torch.compiler.is_compiling() or torch.jit.is_tracing():
            return self._compute()  # differentiable in the conv and Scale params
        key = tuple((id(t), t._version, t.data_ptr(), t.device, t.dtype) for t in tensors)
        cached = self._cache
        if cached is None or cached[0] != key:
            cached = (key, self._compute())
            self.__dict__["_cache"] = cached
        return cached[1]

    def _compute(self) -> tuple[torch.Tensor, torch.Tensor]:
        conv, bn, scale = self._parts
        weight = conv.blobs[0]
        mean, var = bn._global_stats()
        s = torch.rsqrt(var + bn.eps)
        bias = conv.blobs[1] if len(conv.blobs) > 1 else torch.zeros_like(mean)
        shift = -mean
        if scale is not None:
            s = s * scale.blobs[0]
        b = (bias + shift) * s
        if scale is not None and scale.bias_term:
            b = b + scale.blobs[-1]
        return weight * s.reshape(-1, *([1] * (weight.dim() - 1))), b

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        conv, bn, scale = self._parts
        if not self._uses_global_stats():  # put in training mode: the layers one by one
            y = bn(conv(x))
            return scale(y) if scale is not None else y
        weight, bias = self._folded()
        g = conv.geometry
        return _CONV[x.dim() - 2](x, weight, bias, g.stride, g.pad, g.dilation, conv.group)


def _global_stats_bn(module: nn.Module) -> bool:
    from caffe2torch.layers.bvlc.normalization import CaffeBatchNorm

    if not isinstance(module, CaffeBatchNorm):
        return False
    return bool(not module.training if module.use_global_stats is None
                else module.use_global_stats)


def _plain_conv(module: nn.Module) -> bool:
    from caffe2torch.layers.bvlc.vision import CaffeConvolution

    return (isinstance(module, CaffeConvolution) and not module.transposed
            and module.axis == 1 and bool(module.geometry.kernel))


def conv_norm_chains(
    ir: NetIR, modules: Sequence[nn.Module], outputs: Sequence[tuple[str, BlobRef]]
) -> dict[int, tuple[int, ...]]:
    """{position of a Convolution: positions of the BatchNorm (and Scale) folded into it}
    for chains whose intermediate tops nothing else reads."""
    uses = Counter(b for layer in ir.layers for b in layer.bottoms)
    uses.update(ref for _, ref in outputs)
    chains: dict[int, tuple[int, ...]] = {}
    taken: set[int] = set()
    for pos in range(len(ir.layers) - 1):
        conv, bn = ir.layers[pos], ir.layers[pos + 1]
        if pos in taken or not (_plain_conv(modules[pos]) and _global_stats_bn(modules[pos + 1])):
            continue
        if not (len(conv.bottoms) == 1 and len(conv.tops) == 1 and len(bn.bottoms) == 1
                and len(bn.tops) == 1 and bn.bottoms[0] == conv.tops[0]
                and uses[conv.tops[0]] == 1 and not any(conv.loss_weights)
                and not any(bn.loss_weights) and all(bn.propagate_down)):
            continue
        members: tuple[int, ...] = (pos + 1,)
        if pos + 2 < len(ir.layers):
            sc, scale = ir.layers[pos + 2], cast(Any, modules[pos + 2])
            if (hasattr(scale, "can_fold") and scale.can_fold(modules[pos + 1])
                    and len(sc.bottoms) == 1 and len(sc.tops) == 1
                    and sc.bottoms[0] == bn.tops[0] and uses[bn.tops[0]] == 1
                    and not any(sc.loss_weights) and all(sc.propagate_down)):
                members = (pos + 1, pos + 2)
        chains[pos] = members
        taken.update(members)
    return chains


def make_fold(modules: Sequence[nn.Module], pos: int, members: tuple[int, ...]) -> ConvNormFold:
    scale = modules[members[1]] if len(members) > 1 else None
    return ConvNormFold(modules[pos], modules[members[0]], scale)


def fold_conv_bn(net: Any, enabled: bool = True) -> Any:
    """Fold Convolution + BatchNorm (+ Scale) chains of ``net`` (a CaffeNet) from its
    next call on (see the module docstring); returns the net."""
    net.fold_conv_bn = enabled
    net._graphs.clear()
    if getattr(net, "compiled", None) is not None:
        net.compiled._runners.clear()
    return net
