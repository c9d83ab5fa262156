"""Export-time forms of layers whose PyTorch forward computes a shape from the batch size
in Python (so the tracer would record it as a constant and the ONNX file would run at the
traced batch only).

The tracer keeps ``x.shape[i]`` symbolic while it flows straight into a tensor op, but not
through Python arithmetic (``math.prod``, ``int()``, a list of sizes). Each form here
writes the same computation with the batch left to ONNX: a ``-1`` where the batch goes,
static sizes elsewhere (the builder knows them).

* Reshape: the top shape computed at two batch sizes; the one dim that changes becomes -1.
* Slice along the batch axis into equal parts: ``x[i*n:(i+1)*n]`` with ``n`` from the
  traced shape. (With slice_point on the batch axis the net is batch-fixed: see
  ``batch_fixers``.)
* SoftmaxWithLoss: forward only (its autograd.Function is opaque to the tracer), counts
  from the traced shape.

``batch_fixers`` lists the layers that make a net run at one batch size only (a reason
each): the exporter then fixes the batch and says so.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
from torch import nn

from caffe2torch.export.static import replace_module
from caffe2torch.graph import CaffeNet

if TYPE_CHECKING:
    from caffe2torch.layers.bvlc.blob_ops import CaffeReshape


class BatchFreeReshape(nn.Module):
    """``x.reshape(target)`` with the batch-dependent dim of the target as -1."""

    def __init__(self, target: Sequence[int]) -> None:
        super().__init__()
        self.target = tuple(target)
        self.blobs = nn.ParameterList()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(self.target)

    def extra_repr(self) -> str:
        return f"target={list(self.target)}"


class BatchSlice(nn.Module):
    """Caffe's Slice along axis 0 into ``parts`` equal parts, for any batch."""

    def __init__(self, parts: int) -> None:
        super().__init__()
        self.parts = parts
        self.blobs = nn.ParameterList()

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        n = x.shape[0] // self.parts
        return tuple(x[i * n:(i + 1) * n] for i in range(self.parts))


class SoftmaxWithLossForward(nn.Module):
    """SoftmaxWithLoss, forward only: softmax over ``axis``, -log(max(p[label], FLT_MIN))
    over non-ignored entries, divided by Caffe's normalizer (get_normalizer)."""

    def __init__(self, axis: int, ignore_label: int | None, mode: int, num_tops: int,
                 channels: int, inner: int) -> None:
        super().__init__()
        self.axis = axis
        self.ignore_label = ignore_label
        self.mode = mode
        self.num_tops = num_tops
        self.channels = channels
        self.inner = inner
        self.blobs = nn.ParameterList()

    def forward(self, logits: torch.Tensor, labels: torch.Tensor):
        from caffe2torch.layers.bvlc.losses import BATCH_SIZE, FLT_MIN, FULL, NONE, VALID

        prob = torch.softmax(logits, dim=self.axis)
        p = prob.reshape(-1, self.channels, self.inner)
        lab = labels.to(torch.int64).reshape(-1, self.inner)  # static_cast<int>
        if self.ignore_label is None:
            valid = torch.ones_like(lab, dtype=torch.bool)
        else:
            valid = lab != self.ignore_label
        safe = torch.where(valid, lab, torch.zeros_like(lab)).unsqueeze(1)
        terms = -torch.log(torch.clamp(p.gather(1, safe).squeeze(1), min=FLT_MIN))
        terms = torch.where(valid, terms, torch.zeros_like(terms))
        ones = torch.ones_like(lab, dtype=torch.float32)
        if self.mode == FULL or (self.mode == VALID and self.ignore_label is None):
            norm = ones.sum()
        elif self.mode == VALID:
            norm = valid.to(torch.float32).sum()
        elif self.mode == BATCH_SIZE:
            norm = ones[:, 0].sum()
        else:
            assert self.mode == NONE
            norm = torch.ones((), dtype=torch.float32)
        loss = terms.sum() / torch.clamp(norm, min=1.0)
        return loss if self.num_tops == 1 else (loss, prob)


def _reshape_target(bottom: tuple[int, ...], module: CaffeReshape) -> tuple[int, ...] | None:
    """The Reshape's target with -1 on the batch-dependent dim (None: no such dim)."""
    from caffe2torch.layers.bvlc.blob_ops import reshape_target

    a = reshape_target(bottom, module.dims, module.axis, module.num_axes)
    try:
        b = reshape_target((bottom[0] * 2, *bottom[1:]), module.dims, module.axis,
                           module.num_axes)
    except ValueError:
        return None
    changed = [i for i, (u, v) in enumerate(zip(a, b)) if u != v]
    if len(a) != len(b) or len(changed) != 1:
        return None
    return tuple(-1 if i == changed[0] else d for i, d in enumerate(a))


def batch_fixers(net: CaffeNet) -> list[str]:
    """Layers that make ``net`` run at one batch size only: 'layer (Type): why' each."""
    from caffe2torch.layers.bvlc.blob_ops import CaffeReshape, CaffeSlice

    shapes = net._version_shapes
    out = []
    for layer, module in zip(net.ir.layers, net._modules_in_order):
        if not layer.bottoms:
            continue
        bottom = tuple(shapes[layer.bottoms[0]])
        if isinstance(module, CaffeReshape) and bottom and _reshape_target(bottom, module) is None:
            out.append(f"{layer.name} (Reshape): its shape {list(module.dims)} fixes the "
                       "batch dimension")
        elif isinstance(module, CaffeSlice) and module.axis == 0 and module.points:
            out.append(f"{layer.name} (Slice): slice_point {list(module.points)} along "
                       "the batch axis")
    return out


def make_batch_free(net: CaffeNet) -> None:
    """Replace every module of ``net`` that would bake the batch size into the trace by its
    form above (in place; the net is a deploy view made for the export)."""
    from caffe2torch.layers.bvlc.blob_ops import CaffeReshape, CaffeSlice
    from caffe2torch.layers.bvlc.losses import CaffeSoftmaxWithLoss

    shapes = net._version_shapes
    for pos, (layer, module) in enumerate(zip(net.ir.layers, net._modules_in_order)):
        if not layer.bottoms:
            continue
        bottom = tuple(shapes[layer.bottoms[0]])
        if isinstance(module, CaffeReshape) and bottom:
            target = _reshape_target(bottom, module)
            if target is not None:
                replace_module(net, pos, BatchFreeReshape(target))
        elif (isinstance(module, CaffeSlice) and module.axis == 0 and not module.points
              and module.num_tops > 1):
            replace_module(net, pos, BatchSlice(module.num_tops))
        elif type(module) is CaffeSoftmaxWithLoss:
            axis = module.axis
            replace_module(net, pos, SoftmaxWithLossForward(
                axis, module.ignore_label, module.normalization, module.num_tops,
                int(bottom[axis]), math.prod(bottom[axis + 1:]),
            ))
