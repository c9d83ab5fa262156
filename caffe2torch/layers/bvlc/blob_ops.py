"""Caffe layers that move, combine or reduce blobs: Concat, Slice, Split, Flatten, Reshape,
Tile, Eltwise, Reduction, Softmax, ArgMax, Filter, BatchReindex, Silence, Crop.

Shapes are checked at build time (a BuildError naming the layer) and recomputed from the
runtime bottoms in ``forward``, so a net built for one batch size runs with another.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise
from typing import Any

import numpy as np
import torch
from torch import nn

from caffe2torch.ir.shapes import concat_shape, known, same_shape
from caffe2torch.layers.emit import Emit, emitter, num
from caffe2torch.layers.portable import portable
from caffe2torch.layers.registry import BuildContext, Shape, register_layer
from caffe2torch.numerics import as_f32


def _canonical_axis(ctx: BuildContext, axis: int, num_axes: int, what: str = "axis") -> int:
    """Caffe's Blob::CanonicalAxisIndex: negative axes count from the end."""
    if not -num_axes <= axis < num_axes:
        raise ctx.error(
            f"{what} {axis} is out of range for a {num_axes}-D bottom "
            f"(valid: {-num_axes} to {num_axes - 1})"
        )
    return axis + num_axes if axis < 0 else axis


# --- Concat -------------------------------------------------------------------------------


class CaffeConcat(nn.Module):
    def __init__(self, axis: int) -> None:
        super().__init__()
        self.axis = axis

    def forward(self, *bottoms: torch.Tensor) -> torch.Tensor:
        if len(bottoms) == 1:
            return bottoms[0]  # Caffe shares the single bottom's data
        return torch.cat(bottoms, dim=self.axis)

    def infer_shapes(self, shapes: list[tuple[int, ...]]) -> list[tuple[int, ...]]:
        return [known(concat_shape(shapes, self.axis))]  # the builder checked the other axes

    def extra_repr(self) -> str:
        return f"axis={self.axis}"


@register_layer("Concat", param="concat_param", bottoms=(1, None), aliases=("CONCAT", "concat"))
def build_concat(ctx: BuildContext) -> nn.Module:
    p = ctx.param
    first = ctx.bottom_shapes[0]
    if p.HasField("concat_dim"):
        if p.HasField("axis"):
            raise ctx.error("give either axis or the legacy concat_dim, not both")
        axis = int(p.concat_dim)
        if not 0 <= axis < len(first):
            raise ctx.error(f"concat_dim {axis} is out of range for a {len(first)}-D bottom")
    else:
        axis = _canonical_axis(ctx, p.axis, len(first))
    for i, shape in enumerate(ctx.bottom_shapes[1:], start=1):
        same = len(shape) == len(first) and all(
            a == b for k, (a, b) in enumerate(zip(shape, first)) if k != axis
        )
        if not same:
            raise ctx.error(
                f"bottom {i} has shape {shape}, bottom 0 has {first}: all dimensions but "
                f"axis {axis} must match"
            )
    return CaffeConcat(axis)


# --- Slice / Split ------------------------------------------------------------------------


class CaffeSlice(nn.Module):
    """Slices along ``axis`` at ``points`` (or into ``num_tops`` equal parts when empty)."""

    def __init__(self, axis: int, points: Sequence[int], num_tops: int) -> None:
        super().__init__()
        self.axis = axis
        self.points = tuple(points)
        self.num_tops = num_tops

    def sizes(self, dim: int) -> list[int]:
        if not self.points:
            return [dim // self.num_tops] * self.num_tops
        edges = (0, *self.points, dim)
        return [b - a for a, b in pairwise(edges)]

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
        if self.num_tops == 1:
            return x
        return tuple(torch.split(x, self.sizes(x.shape[self.axis]), dim=self.axis))

    def extra_repr(self) -> str:
        return f"axis={self.axis}, slice_point={list(self.points)}"


@register_layer("Slice", param="slice_param", tops=(1, None), aliases=("SLICE",))
def build_slice(ctx: BuildContext) -> nn.Module:
    p = ctx.param
    shape = ctx.bottom_shapes[0]
    if p.HasField("slice_dim"):
        if p.HasField("axis"):
            raise ctx.error("give either axis or the legacy slice_dim, not both")
        axis = int(p.slice_dim)
        if not 0 <= axis < len(shape):
            raise ctx.error(f"slice_dim {axis} is out of range for a {len(shape)}-D bottom")
    else:
        axis = _canonical_axis(ctx, p.axis, len(shape))
    dim = shape[axis]
    points = [int(v) for v in p.slice_point]
    n = ctx.num_tops
    if points:
        if len(points) != n - 1:
            raise ctx.error(
                f"{len(points)} slice_point(s) for {n} tops: give exactly {n - 1} "
                "(one fewer than the tops) or none for equal parts"
            )
        if any(b <= a for a, b in zip([0, *points], [*points, dim])):
            raise ctx.error(
                f"slice_point {points} must increase strictly inside (0, {dim}) along axis {axis}"
            )
    elif dim % n:
        raise ctx.error(f"cannot slice {dim} along axis {axis} into {n} equal parts")
    return CaffeSlice(axis, points, n)


class CaffeSplit(nn.Module):
    """The bottom, once per top (Caffe sums the tops' gradients, as autograd does)."""

    def __init__(self, num_tops: int) -> None:
        super().__init__()
        self.num_tops = num_tops

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
        if self.num_tops == 1:
            return x
        return (x,) * self.num_tops

    def infer_shapes(self, shapes: list[tuple[int, ...]]) -> list[tuple[int, ...]]:
        return [same_shape(shapes)] * self.num_tops


@register_layer("Split", tops=(1, None), aliases=("SPLIT", "split"))
def build_split(ctx: BuildContext) -> nn.Module:
    return CaffeSplit(ctx.num_tops)


# --- Flatten / Reshape / Tile -----------------------------------------------------------


class CaffeFlatten(nn.Module):
    def __init__(self, axis: int, end_axis: int) -> None:
        super().__init__()
        self.axis = axis
        self.end_axis = end_axis

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(x, self.axis, self.end_axis)

    def extra_repr(self) -> str:
        return f"axis={self.axis}, end_axis={self.end_axis}"


@register_layer("Flatten", param="flatten_param", aliases=("FLATTEN", "flatten"))
def build_flatten(ctx: BuildContext) -> nn.Module:
    p = ctx.param
    n = len(ctx.bottom_shapes[0])
    axis = _canonical_axis(ctx, p.axis, n)
    end = _canonical_axis(ctx, p.end_axis, n, "end_axis")
    if end < axis:
        raise ctx.error(f"end_axis {p.end_axis} comes before axis {p.axis}")
    return CaffeFlatten(axis, end)


def reshape_target(
    bottom: Sequence[int], dims: Sequence[int], axis: int, num_axes: int
) -> tuple[int, ...]:
    """Caffe's ReshapeLayer::Reshape: the top shape, or ValueError explaining why not.

    ``dims`` replace bottom axes [start, end); 0 copies the bottom's dim at the same place,
    one -1 is inferred from the count."""
    n = len(bottom)
    start = axis if axis >= 0 else n + axis + 1
    if not 0 <= start <= n:
        raise ValueError(f"axis {axis} is out of range for a {n}-D bottom")
    if num_axes < -1:
        raise ValueError(f"num_axes must be >= 0, or -1 for all, got {num_axes}")
    end = n if num_axes == -1 else start + num_axes
    if end > n:
        raise ValueError(f"axis + num_axes = {end} is beyond the {n} axes of the bottom")
    if sum(1 for d in dims if d == -1) > 1:
        raise ValueError("the new shape has more than one -1: at most one dim can be inferred")
    middle: list[int] = []
    inferred = -1
    for i, d in enumerate(dims):
        if d == 0:
            if start + i >= n:
                raise ValueError(f"dim {i} is 0 but the bottom has no axis {start + i} to copy")
            middle.append(int(bottom[start + i]))
        elif d == -1:
            inferred = i
            middle.append(1)
        elif d < -1:
            raise ValueError(f"dim {i} is {d}: dims must be positive, 0 (copy) or -1 (infer)")
        else:
            middle.append(int(d))
    top = [*bottom[:start], *middle, *bottom[end:]]
    count = int(np.prod(bottom, dtype=np.int64))
    if inferred >= 0:
        known = int(np.prod(top, dtype=np.int64))
        if known == 0 or count % known:
            raise ValueError(
                f"the bottom count {count} is not divisible by the product of the given "
                f"dims ({known})"
            )
        top[start + inferred] = count // known
    if int(np.prod(top, dtype=np.int64)) != count:
        raise ValueError(
            f"the new shape {tuple(top)} has {int(np.prod(top))} elements, the bottom "
            f"{tuple(bottom)} has {count}"
        )
    return tuple(top)


class CaffeReshape(nn.Module):
    def __init__(self, dims: Sequence[int], axis: int, num_axes: int) -> None:
        super().__init__()
        self.dims = tuple(dims)
        self.axis = axis
        self.num_axes = num_axes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(reshape_target(tuple(x.shape), self.dims, self.axis, self.num_axes))

    def extra_repr(self) -> str:
        return f"dims={list(self.dims)}, axis={self.axis}, num_axes={self.num_axes}"


@register_layer("Reshape", param="reshape_param")
def build_reshape(ctx: BuildContext) -> nn.Module:
    p = ctx.param
    dims = [int(d) for d in p.shape.dim]
    try:
        reshape_target(ctx.bottom_shapes[0], dims, p.axis, p.num_axes)
    except ValueError as exc:
        raise ctx.error(str(exc)) from None
    return CaffeReshape(dims, p.axis, p.num_axes)


class CaffeTile(nn.Module):
    """Repeats the bottom ``tiles`` times along ``axis`` (whole sub-blobs, like np.tile)."""

    def __init__(self, axis: int, tiles: int, num_axes: int) -> None:
        super().__init__()
        self.axis = axis
        self.tiles = tiles
        self.reps = tuple(tiles if i == axis else 1 for i in range(num_axes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.repeat(self.reps)

    def extra_repr(self) -> str:
        return f"axis={self.axis}, tiles={self.tiles}"


@register_layer("Tile", param="tile_param")
def build_tile(ctx: BuildContext) -> nn.Module:
    p = ctx.param
    n = len(ctx.bottom_shapes[0])
    axis = _canonical_axis(ctx, p.axis, n)
    if not p.HasField("tiles") or p.tiles < 1:
        raise ctx.error("tile_param.tiles must be given and at least 1")
    return CaffeTile(axis, int(p.tiles), n)


# --- Eltwise ------------------------------------------------------------------------------

PROD, SUM, MAX = 0, 1, 2  # EltwiseParameter.EltwiseOp


@portable
def eltwise_max(
    bottoms: list[torch.Tensor] | tuple[torch.Tensor, ...], with_mask: bool = False
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Caffe's Eltwise MAX forward and (optionally) the index of the winning bottom: a tie
    between the first two goes to the second, a later bottom wins only where greater."""
    a, b = bottoms[0], bottoms[1]
    first = a > b
    top = torch.where(first, a, b)
    mask = None
    if with_mask:
        mask = torch.where(first, 0, 1).to(torch.int8 if len(bottoms) < 128 else torch.int32)
    for i in range(2, len(bottoms)):
        better = bottoms[i] > top
        top = torch.where(better, bottoms[i], top)
        if mask is not None:
            mask = torch.where(better, torch.full_like(mask, i), mask)
    return top, mask


def _needs_grad(tensors: Sequence[torch.Tensor]) -> bool:
    """Custom gradients are only needed when autograd records: plain ops otherwise (faster,
    and what ONNX export and torch.compile see in inference)."""
    return torch.is_grad_enabled() and any(t.requires_grad for t in tensors)


class _EltwiseMax(torch.autograd.Function):
    """Caffe's MAX: ties between bottoms 0 and 1 go to 1 (``a > b`` else b); later bottoms
    win only when strictly greater. The gradient goes to the winning bottom alone."""

    @staticmethod
    def forward(ctx: Any, *bottoms: torch.Tensor) -> torch.Tensor:
        top, mask = eltwise_max(bottoms, with_mask=True)
        assert mask is not None
        ctx.save_for_backward(mask)
        ctx.num = len(bottoms)
        return top

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        (mask,) = ctx.saved_tensors
        zero = grad.new_zeros(())
        return tuple(
            torch.where(mask == i, grad, zero) if ctx.needs_input_grad[i] else None
            for i in range(ctx.num)
        )


class _EltwiseProdUnstable(torch.autograd.Function):
    """PROD with ``stable_prod_grad: false``: Caffe's gradient is dy * top / bottom_i."""

    @staticmethod
    def forward(ctx: Any, *bottoms: torch.Tensor) -> torch.Tensor:
        top = bottoms[0] * bottoms[1]
        for x in bottoms[2:]:
            top = top * x
        ctx.save_for_backward(top, *bottoms)
        return top

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        top, *bottoms = ctx.saved_tensors
        return tuple(
            top / x * grad if ctx.needs_input_grad[i] else None for i, x in enumerate(bottoms)
        )


class CaffeEltwise(nn.Module):
    def __init__(self, operation: int, coeffs: Sequence[float], stable_prod_grad: bool) -> None:
        super().__init__()
        self.operation = operation
        self.coeffs = tuple(coeffs)
        self.stable_prod_grad = stable_prod_grad

    def forward(self, *bottoms: torch.Tensor) -> torch.Tensor:
        if self.operation == SUM:
            top: torch.Tensor | None = None
            for c, x in zip(self.coeffs, bottoms):
                term = x if c == 1.0 else x * c
                top = term if top is None else top + term
            assert top is not None
            return top
        if self.operation == PROD:
            if not self.stable_prod_grad and _needs_grad(bottoms):
                return _EltwiseProdUnstable.apply(*bottoms)
            # autograd gives dy * (product of the other bottoms): Caffe's stable gradient
            out = bottoms[0] * bottoms[1]
            for x in bottoms[2:]:
                out = out * x
            return out
        if _needs_grad(bottoms):
            return _EltwiseMax.apply(*bottoms)
        return eltwise_max(bottoms, with_mask=False)[0]

    def extra_repr(self) -> str:
        name = {PROD: "PROD", SUM: "SUM", MAX: "MAX"}[self.operation]
        return f"operation={name}, coeff={list(self.coeffs)}"

    def infer_shapes(self, shapes: list[tuple[int, ...]]) -> list[tuple[int, ...]]:
        return [same_shape(shapes)]  # elementwise


@register_layer("Eltwise", param="eltwise_param", bottoms=(2, None), aliases=("ELTWISE",))
def build_eltwise(ctx: BuildContext) -> nn.Module:
    p = ctx.param
    n = len(ctx.bottom_shapes)
    if p.coeff and len(p.coeff) != n:
        raise ctx.error(f"{len(p.coeff)} coeff values for {n} bottoms: give one per bottom")
    if p.coeff and p.operation != SUM:
        raise ctx.error("coeff is only allowed with operation SUM")
    if p.operation not in (PROD, SUM, MAX):
        raise ctx.error(f"unknown operation {p.operation}")
    first = ctx.bottom_shapes[0]
    for i, shape in enumerate(ctx.bottom_shapes[1:], start=1):
        if tuple(shape) != tuple(first):
            raise ctx.error(f"bottom {i} has shape {shape}, bottom 0 has {first}: they must match")
    coeffs = [as_f32(c) for c in p.coeff] or [1.0] * n
    return CaffeEltwise(int(p.operation), coeffs, bool(p.stable_prod_grad))


# --- Reduction / Softmax / ArgMax ---------------------------------------------------------

R_SUM, R_ASUM, R_SUMSQ, R_MEAN = 1, 2, 3, 4  # ReductionParameter.ReductionOp


def reduction_coeff(operation: int, coeff: float, dim: int) -> float:
    """The factor Reduction applies to its sums: ``coeff``; MEAN folds 1/dim into it, in
    float32 as Caffe does."""
    if operation == R_MEAN:
        return float(np.float32(coeff) / np.float32(dim))
    return coeff


class CaffeReduction(nn.Module):
    """Reduces every axis from ``axis`` on; the top keeps the axes before it."""

    def __init__(self, operation: int, axis: int, coeff: float) -> None:
        super().__init__()
        self.operation = operation
        self.axis = axis
        self.coeff = coeff

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(*x.shape[: self.axis], -1)
        if self.operation == R_ASUM:
            top = flat.abs().sum(-1)  # gradient sign(x): 0 at 0, as Caffe
        elif self.operation == R_SUMSQ:
            top = (flat * flat).sum(-1)
        else:
            top = flat.sum(-1)
        coeff = reduction_coeff(self.operation, self.coeff, flat.shape[-1])
        return top if coeff == 1.0 else top * coeff

    def extra_repr(self) -> str:
        name = {R_SUM: "SUM", R_ASUM: "ASUM", R_SUMSQ: "SUMSQ", R_MEAN: "MEAN"}[self.operation]
        return f"operation={name}, axis={self.axis}, coeff={self.coeff}"


@register_layer("Reduction", param="reduction_param")
def build_reduction(ctx: BuildContext) -> nn.Module:
    p = ctx.param
    if p.operation not in (R_SUM, R_ASUM, R_SUMSQ, R_MEAN):
        raise ctx.error(f"unknown reduction operation {p.operation}")
    n = len(ctx.bottom_shapes[0])
    axis = _canonical_axis(ctx, p.axis, n) if n else 0
    return CaffeReduction(int(p.operation), axis, as_f32(p.coeff))


class CaffeSoftmax(nn.Module):
    def __init__(self, axis: int) -> None:
        super().__init__()
        self.axis = axis

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # max-subtracted exp / sum; backward (dy - sum(dy * y)) * y: both Caffe's
        return torch.softmax(x, dim=self.axis)

    def infer_shapes(self, shapes: list[tuple[int, ...]]) -> list[tuple[int, ...]]:
        return [same_shape(shapes)]  # elementwise

    def extra_repr(self) -> str:
        return f"axis={self.axis}"


@register_layer("Softmax", param="softmax_param", aliases=("SOFTMAX", "softmax"))
def build_softmax(ctx: BuildContext) -> nn.Module:
    return CaffeSoftmax(_canonical_axis(ctx, ctx.param.axis, len(ctx.bottom_shapes[0])))


@portable
def caffe_topk(x: torch.Tensor, k: int, dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``k`` largest values along ``dim`` and their indices, ordered as Caffe's
    std::partial_sort of (value, index) pairs with std::greater: among equal values the
    larger index comes first."""
    size = x.shape[dim]
    flipped = x.flip(dim)  # a stable descending sort of the flipped axis puts larger indices first
    if k == 1:
        idx = flipped.argmax(dim=dim, keepdim=True)  # first maximum of flipped = last of x
        vals = flipped.gather(dim, idx)
    elif torch.onnx.is_in_onnx_export():
        # ONNX TopK puts the lower index first among ties: on the flipped axis, Caffe's order
        vals, idx = torch.topk(flipped, k, dim=dim)
    else:
        vals, idx = torch.sort(flipped, dim=dim, descending=True, stable=True)
        vals, idx = vals.narrow(dim, 0, k), idx.narrow(dim, 0, k)
    return vals, (size - 1) - idx


@portable
def caffe_argmax(x: torch.Tensor, top_k: int, out_max_val: bool, axis: int | None) -> torch.Tensor:
    """Caffe's ArgMax: the ``top_k`` largest values per item (over ``axis``, or over everything
    after the batch axis), in caffe_topk's order. With an axis: the indices (as floats) or,
    with ``out_max_val``, the values. Without: (N, 1 or 2, top_k) padded to >= 3 axes,
    holding the indices then (``out_max_val``) the values."""
    if axis is not None:
        vals, idx = caffe_topk(x, top_k, axis)
        return vals if out_max_val else idx.to(x.dtype)
    flat = x.reshape(x.shape[0], -1)
    vals, idx = caffe_topk(flat, top_k, 1)
    parts = [idx.to(x.dtype), vals] if out_max_val else [idx.to(x.dtype)]
    out = torch.stack(parts, dim=1)
    extra = max(x.dim(), 3) - 3
    return out.reshape(*out.shape, *([1] * extra))


class CaffeArgMax(nn.Module):
    """Caffe's ArgMax: indices (as floats) of the top_k values; no gradient."""

    def __init__(self, top_k: int, out_max_val: bool, axis: int | None) -> None:
        super().__init__()
        self.top_k = top_k
        self.out_max_val = out_max_val
        self.axis = axis

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return caffe_argmax(x.detach(), self.top_k, self.out_max_val, self.axis)

    def extra_repr(self) -> str:
        return f"top_k={self.top_k}, out_max_val={self.out_max_val}, axis={self.axis}"


@register_layer("ArgMax", param="argmax_param", aliases=("ARGMAX",))
def build_argmax(ctx: BuildContext) -> nn.Module:
    p = ctx.param
    shape = ctx.bottom_shapes[0]
    if p.top_k < 1:
        raise ctx.error(f"top_k must be at least 1, got {p.top_k}")
    axis: int | None = None
    if p.HasField("axis"):
        axis = _canonical_axis(ctx, p.axis, len(shape))
        if p.top_k > shape[axis]:
            raise ctx.error(f"top_k {p.top_k} exceeds the {shape[axis]} entries of axis {axis}")
    else:
        per_item = int(np.prod(shape[1:], dtype=np.int64))
        if p.top_k > per_item:
            raise ctx.error(f"top_k {p.top_k} exceeds the {per_item} values per item")
    return CaffeArgMax(int(p.top_k), bool(p.out_max_val), axis)


# --- Filter / BatchReindex / Silence / Crop -----------------------------------------------


class CaffeFilter(nn.Module):
    """Keeps the items (axis 0) whose selector (the last bottom) is non-zero.

    The number of kept items depends on the selector's values: ``infer_shapes`` reports the
    batch size, the upper bound (Caffe's own first Reshape does the same)."""

    def forward(self, *bottoms: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
        selector = bottoms[-1].detach()
        keep = torch.nonzero(selector.reshape(selector.shape[0], -1)[:, 0] != 0).squeeze(1)
        tops = tuple(b.index_select(0, keep) for b in bottoms[:-1])
        return tops[0] if len(tops) == 1 else tops

    def infer_shapes(self, bottom_shapes: list[Shape]) -> list[Shape]:
        return [tuple(s) for s in bottom_shapes[:-1]]


@register_layer("Filter", bottoms=(2, None), tops=(1, None))
def build_filter(ctx: BuildContext) -> nn.Module:
    shapes = ctx.bottom_shapes
    if ctx.num_tops != len(shapes) - 1:
        raise ctx.error(
            f"takes one top per filtered bottom: {len(shapes) - 1} top(s) for "
            f"{len(shapes)} bottoms (the last bottom is the selector), got {ctx.num_tops}"
        )
    selector = shapes[-1]
    if not selector or any(d != 1 for d in selector[1:]):
        raise ctx.error(f"the selector (last bottom) must have shape (N, 1, ...), got {selector}")
    for i, shape in enumerate(shapes[:-1]):
        if not shape or shape[0] != selector[0]:
            raise ctx.error(
                f"bottom {i} has {shape[0] if shape else 0} items, the selector has {selector[0]}"
            )
    return CaffeFilter()


class CaffeBatchReindex(nn.Module):
    """top[i] = bottom[int(index[i])]; gradients accumulate on repeated indices."""

    def forward(self, x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        return x.index_select(0, index.detach().reshape(-1).long())


@register_layer("BatchReindex", bottoms=2)
def build_batch_reindex(ctx: BuildContext) -> nn.Module:
    if len(ctx.bottom_shapes[1]) != 1:
        raise ctx.error(f"the index bottom must be 1-D, got shape {ctx.bottom_shapes[1]}")
    return CaffeBatchReindex()


class CaffeSilence(nn.Module):
    """Consumes its bottoms; no tops (Caffe gives them a zero gradient)."""

    def forward(self, *bottoms: torch.Tensor) -> tuple[()]:
        return ()


@register_layer("Silence", bottoms=(1, None), tops=0, aliases=("SILENCE",))
def build_silence(ctx: BuildContext) -> nn.Module:
    return CaffeSilence()


class CaffeCrop(nn.Module):
    """Crops bottom 0 to bottom 1's size on every axis from ``axis`` on, at ``offsets``."""

    def __init__(self, axis: int, offsets: Sequence[int]) -> None:
        super().__init__()
        self.axis = axis
        self.offsets = tuple(offsets)

    def forward(self, x: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
        for i in range(self.axis, x.dim()):
            size = reference.shape[i]
            if size != x.shape[i]:
                x = x.narrow(i, self.offsets[i - self.axis], size)
        return x

    def extra_repr(self) -> str:
        return f"axis={self.axis}, offset={list(self.offsets)}"


@register_layer("Crop", param="crop_param", bottoms=2)
def build_crop(ctx: BuildContext) -> nn.Module:
    p = ctx.param
    data, ref = ctx.bottom_shapes
    n = len(data)
    axis = _canonical_axis(ctx, p.axis, n)
    if len(ref) != n:
        raise ctx.error(f"the two bottoms must have the same number of axes: {data} and {ref}")
    given = [int(v) for v in p.offset]
    if len(given) > 1 and axis + len(given) != n:
        raise ctx.error(
            f"{len(given)} offsets for the {n - axis} axes from axis {axis}: give one offset "
            "for all or one per cropped axis"
        )
    offsets = [
        0 if not given else given[0] if len(given) == 1 else given[i] for i in range(n - axis)
    ]
    for i, off in enumerate(offsets):
        d = axis + i
        if off < 0 or data[d] - off < ref[d]:
            raise ctx.error(
                f"the crop of axis {d} is out of bounds: size {ref[d]} at offset {off} in "
                f"a bottom of size {data[d]}"
            )
    return CaffeCrop(axis, offsets)


# ----------------------------------------------------------------------------- standalone source
# convert's emitters for the module classes above (caffe2torch.layers.emit)


@emitter(CaffeSoftmax)
def _emit_softmax(e: Emit) -> list[str]:
    return e.assign(f"torch.softmax({e.bottoms[0]}, dim={e.module.axis})")


@emitter(CaffeConcat)
def _emit_concat(e: Emit) -> list[str]:
    if len(e.bottoms) == 1:
        return e.assign(e.bottoms[0])
    return e.assign(f"torch.cat([{', '.join(e.bottoms)}], dim={e.module.axis})")


@emitter(CaffeSlice)
def _emit_slice(e: Emit) -> list[str]:
    m = e.module
    if len(e.tops) == 1:
        return e.assign(e.bottoms[0])
    sizes = m.sizes(e.bottom_shapes[0][m.axis])
    return [f"{', '.join(e.tops)} = torch.split({e.bottoms[0]}, {sizes}, dim={m.axis})"]


@emitter(CaffeSplit)
def _emit_split(e: Emit) -> list[str]:
    return [f"{top} = {e.bottoms[0]}" for top in e.tops if top != e.bottoms[0]]


@emitter(CaffeFlatten)
def _emit_flatten(e: Emit) -> list[str]:
    m = e.module
    end = m.end_axis - len(e.bottom_shapes[0])  # negative: right for any rank
    return e.assign(f"torch.flatten({e.bottoms[0]}, {m.axis}, {end})")


@emitter(CaffeReshape)
def _emit_reshape(e: Emit) -> list[str]:
    m = e.module
    bottom, top = e.bottom_shapes[0], e.top_shapes[0]
    x = e.bottoms[0]
    dims = [str(d) for d in top]
    start = m.axis if m.axis >= 0 else len(bottom) + m.axis + 1
    keeps_batch = start >= 1 or (m.dims[:1] == (0,))
    if bottom and top and keeps_batch:
        dims[0] = f"{x}.shape[0]"  # the batch axis is copied: any batch size works
    return e.assign(f"{x}.reshape({', '.join(dims)})")


@emitter(CaffeTile)
def _emit_tile(e: Emit) -> list[str]:
    return e.assign(f"{e.bottoms[0]}.repeat{tuple(e.module.reps)}")


@emitter(CaffeCrop)
def _emit_crop(e: Emit) -> list[str]:
    m = e.module
    x = e.bottoms[0]
    data, ref = e.bottom_shapes
    parts = []
    for d in range(len(data)):
        if d < m.axis or data[d] == ref[d]:
            parts.append(":")
        else:
            off = m.offsets[d - m.axis]
            parts.append(f"{off}:{off + ref[d]}")
    while parts and parts[-1] == ":":
        parts.pop()
    return e.assign(f"{x}[{', '.join(parts)}]" if parts else x)


@emitter(CaffeEltwise)
def _emit_eltwise(e: Emit) -> list[str]:
    m = e.module
    xs = e.bottoms
    if m.operation == SUM:
        terms = [x if c == 1.0 else f"{x} * {num(c)}" for x, c in zip(xs, m.coeffs)]
        expr = terms[0]
        for t in terms[1:]:
            expr = f"{expr} - {t[1:]}" if t.startswith("-") else f"{expr} + {t}"
        return e.assign(expr)
    if m.operation == PROD:
        return e.assign(" * ".join(xs))
    # MAX: the library's rule for ties (eltwise_max)
    bottoms = ", ".join(xs)
    return e.assign(f"{e.call('eltwise_max', f'[{bottoms}]')}[0]")


@emitter(CaffeReduction)
def _emit_reduction(e: Emit) -> list[str]:
    m = e.module
    x = e.bottoms[0]
    flat = f"{x}.reshape(*{x}.shape[:{m.axis}], -1)"
    if m.operation == R_ASUM:
        y = f"{flat}.abs().sum(-1)"
    elif m.operation == R_SUMSQ:
        y = f"({flat} ** 2).sum(-1)"
    else:
        y = f"{flat}.sum(-1)"
    dim = 1
    for d in e.bottom_shapes[0][m.axis:]:
        dim *= d
    coeff = reduction_coeff(m.operation, m.coeff, dim)
    return e.assign(y if coeff == 1.0 else f"{y} * {num(coeff)}")


@emitter(CaffeArgMax)
def _emit_argmax(e: Emit) -> list[str]:
    m = e.module
    return e.assign(e.call("caffe_argmax", f"{e.bottoms[0]}, {m.top_k}, {m.out_max_val}, {m.axis}"))


@emitter(CaffeSilence)
def _emit_silence(e: Emit) -> list[str]:
    return [f"# {e.layer.name}: Silence reads {', '.join(e.bottoms)} and computes nothing"]
