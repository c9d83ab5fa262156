"""Persistent gradient buffers: param diffs kept across iterations, written in place.

Caffe keeps each param blob's diff allocated for the life of the net: Net::ClearParamDiffs
zeroes it, and every layer's Backward_cpu accumulates into it (InnerProduct's weight
gradient is one ``gemm`` with beta = 1). Autograd instead returns a freshly allocated
gradient per use, which AccumulateGrad then stores or adds: for a big weight at a small
batch (an InnerProduct 12544 -> 4096 at batch 4, 205 MB) allocating and first-touching
that tensor every step costs more than the GEMM itself.

While a :class:`GradBuffers` is :meth:`active <GradBuffers.active>` (the solver holds it
around each forward/backward), layers that compute a param gradient as one product route
it here (:func:`linear`, :func:`embedding`): the product is written straight into the
param's kept buffer (overwriting it for the first use after a clear, accumulating after:
shared params and ``iter_size`` sum as Caffe's diffs do), and ``p.grad`` is that buffer.
Clearing stays ``p.grad = None`` (the buffer is kept here, not freed). Params no layer
writes directly keep autograd's own accumulation.

Outside an active store (user code, pycaffe's ``net.backward``, ``torch.autograd.grad``),
the layers run plain ``F.linear`` / ``F.embedding``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.weak import WeakIdKeyDictionary

from caffe2torch.layers import cpu_kernels

_ACTIVE: GradBuffers | None = None


class GradBuffers:
    """The kept diffs of a set of params (a solver's learnable params)."""

    def __init__(self, params: Iterable[torch.Tensor] = ()) -> None:
        self._members = WeakIdKeyDictionary()
        self.allocations = 0  # buffers allocated so far (one per param once warm)
        for p in params:
            self.add(p)

    def add(self, param: torch.Tensor) -> None:
        """Let ``param``'s gradient be written in place (its buffer comes at first use)."""
        if param not in self._members:
            self._members[param] = None

    def __contains__(self, param: object) -> bool:
        return isinstance(param, torch.Tensor) and param in self._members

    @contextmanager
    def active(self) -> Iterator[GradBuffers]:
        """Layers write the members' gradients in place within this block."""
        global _ACTIVE
        previous, _ACTIVE = _ACTIVE, self
        try:
            yield self
        finally:
            _ACTIVE = previous

    def target(self, param: torch.Tensor) -> tuple[torch.Tensor, bool]:
        """The tensor to write ``param``'s gradient into and whether it already holds a
        sum to add to (``p.grad`` set since the last clear) or is free to overwrite."""
        grad = param.grad
        if grad is not None:
            return grad, True
        buf = self._members.get(param)
        if buf is None or buf.shape != param.shape or buf.dtype != param.dtype \
                or buf.device != param.device:
            buf = torch.empty_like(param, memory_format=torch.contiguous_format)
            self._members[param] = buf
            self.allocations += 1
        param.grad = buf
        return buf, False

    def release_unkept(self, params: Iterable[torch.Tensor]) -> None:
        """Drop the gradients autograd allocated (``p.grad = None``) and leave the kept
        buffers summing: Caffe's ``time`` runs Backward again and again without
        Net::ClearParamDiffs, so each pass's weight gradients accumulate (gemm with
        beta = 1, which MKL runs faster than an overwrite: it scales C by zero in a pass
        of its own)."""
        for p in params:
            if p.grad is not None and p.grad is not self._members.get(p):
                p.grad = None


def writes_directly(param: torch.Tensor) -> bool:
    """Whether a layer should route ``param``'s gradient through the active store now."""
    return (_ACTIVE is not None and param in _ACTIVE and param.requires_grad
            and torch.is_grad_enabled() and param.dtype == torch.float32
            and not torch.compiler.is_compiling()  # a compiled graph's backward is its own
            and not torch.is_autocast_enabled(param.device.type))


def _writable(grad: Any, param: torch.Tensor) -> GradBuffers | None:
    """The store to write into at backward time (None: hand the gradient to autograd),
    e.g. when the graph is run backward after the solver's block ended."""
    store = _ACTIVE
    if store is None or param not in store or torch.is_grad_enabled():  # create_graph
        return None
    g = param.grad
    if g is not None and (g.shape != param.shape or g.dtype != grad.dtype
                          or g.device != grad.device or g.requires_grad
                          or not g.is_contiguous()):
        return None
    return store


# --------------------------------------------------------------------------- InnerProduct


class _Linear(torch.autograd.Function):
    """y = x W^T + b (``transpose``: y = x W) with W's gradient written into its kept
    buffer: InnerProductLayer::Backward_cpu's ``gemm(CblasTrans, ..., 1., diff)``."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                transpose: bool) -> torch.Tensor:
        ctx.save_for_backward(x, weight)
        ctx.transpose = transpose
        ctx.has_bias = bias is not None
        if not transpose and cpu_kernels.skinny(x, weight):
            return cpu_kernels.skinny_linear(x, weight, bias)
        return F.linear(x, weight.t() if transpose else weight, bias)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[Any, ...]:
        x, weight = ctx.saved_tensors
        g2 = grad.reshape(-1, grad.shape[-1])
        x2 = x.reshape(-1, x.shape[-1])
        gx = gw = gb = None
        if ctx.needs_input_grad[0]:
            if ctx.transpose:
                gx = (g2 @ weight.t()).reshape(x.shape)
            elif cpu_kernels.skinny(g2, weight, cpu_kernels.SKINNY_GRAD_WEIGHT):
                gx = cpu_kernels.skinny_input_grad(g2, weight).reshape(x.shape)
            else:
                gx = (g2 @ weight).reshape(x.shape)
        if ctx.needs_input_grad[1]:
            a, b = (x2.t(), g2) if ctx.transpose else (g2.t(), x2)
            store = _writable(grad, weight)
            if store is None:
                gw = a @ b
            else:
                out, accumulate = store.target(weight)
                if accumulate:
                    out.addmm_(a, b)
                else:
                    torch.mm(a, b, out=out)
        if ctx.has_bias and ctx.needs_input_grad[2]:
            gb = g2.sum(0)
        return gx, gw, gb, None


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
           transpose: bool = False) -> torch.Tensor:
    """Caffe's InnerProduct on ``x`` already flattened to (..., K): ``F.linear``, with the
    weight gradient kept in place while a store is active (see the module docstring)."""
    if writes_directly(weight) and weight.is_contiguous():
        return _Linear.apply(x, weight, bias, transpose)
    if not transpose and x.dim() == 2 and cpu_kernels.skinny(x, weight) and not (
            torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad)):
        return cpu_kernels.skinny_linear(x, weight, bias)  # autograd's mm backward is slow
    return F.linear(x, weight.t() if transpose else weight, bias)


# --------------------------------------------------------------------------- Embed


class _Embedding(torch.autograd.Function):
    """Rows of W picked by ``index``; W's gradient is the top diff scattered into its kept
    buffer (EmbedLayer::Backward_cpu adds each row of the top diff to its row of the diff)."""

    @staticmethod
    def forward(ctx: Any, index: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(index)
        ctx.weight = weight
        return F.embedding(index, weight)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[Any, ...]:
        (index,) = ctx.saved_tensors
        weight = ctx.weight
        flat_index = index.reshape(-1)
        rows = grad.reshape(-1, grad.shape[-1])
        store = _writable(grad, weight)
        if store is None:
            gw = torch.zeros_like(weight, dtype=grad.dtype).index_add_(0, flat_index, rows)
            return None, gw
        out, accumulate = store.target(weight)
        if not accumulate:
            out.zero_()
        out.index_add_(0, flat_index, rows)
        return None, None


def embedding(index: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """``F.embedding(index, weight)`` with W's gradient kept in place while a store is
    active; ``index`` carries no gradient."""
    if writes_directly(weight) and weight.is_contiguous():
        return _Embedding.apply(index, weight)
    return F.embedding(index, weight)
