"""The torch-free shape pass: blob shapes from the net text alone (Input, DummyData,
MemoryData, ImageData sizes; crop_size), propagated through the layer types whose output
shape Caffe computes from settings, and the param blob shapes of the layers that share
params most. A dimension it cannot know is None and the checks that need it are skipped.
Formulas follow the Reshape() of each Caffe layer; window geometry is ir.geometry's (the
builder's). The linter uses it; the builder gets exact shapes from its built modules."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from caffe2torch.ir.geometry import conv_out, deconv_out, kernel_extent, pool_ceil_mode, pooled_size

Dim = int | None
Shape = tuple[Dim, ...]

# Types whose only top has the shape of their first bottom.
_SAME = frozenset({
    "ReLU", "PReLU", "ELU", "Sigmoid", "TanH", "AbsVal", "BNLL", "Power", "Exp", "Log",
    "Threshold", "Clip", "Swish", "Dropout", "LRN", "BatchNorm", "Scale", "Bias", "MVN",
    "Softmax", "Normalize", "BN", "ShuffleChannel", "Axpy",
})
_SCALAR = frozenset({"Accuracy"})


@dataclass
class ShapeIssue:
    code: str
    layer: int
    message: str
    field: str | None = None
    severity: str | None = None


@dataclass
class ShapeResult:
    blobs: dict[str, Shape | None] = field(default_factory=dict)
    bottoms: dict[int, list[Shape | None]] = field(default_factory=dict)
    issues: list[ShapeIssue] = field(default_factory=list)


def _rep(values: Sequence[int], i: int, default: int) -> int:
    if not values:
        return default
    return int(values[i] if len(values) > i else values[0])


def conv_geometry(p: Any, n: int) -> tuple[list[int], list[int], list[int], list[int]] | None:
    """kernel, stride, pad, dilation per spatial axis (ConvolutionParameter)."""
    if p.HasField("kernel_h") or p.HasField("kernel_w"):
        if n != 2:
            return None
        k = [p.kernel_h, p.kernel_w]
    elif p.kernel_size:
        k = [_rep(p.kernel_size, i, 0) for i in range(n)]
    else:
        return None
    s = [p.stride_h, p.stride_w] if p.HasField("stride_h") and n == 2 else [
        _rep(p.stride, i, 1) for i in range(n)]
    pd = [p.pad_h, p.pad_w] if p.HasField("pad_h") and n == 2 else [
        _rep(p.pad, i, 0) for i in range(n)]
    d = [_rep(p.dilation, i, 1) for i in range(n)]
    return k, s, pd, d


def _conv(lp: Any, b: Shape, res: ShapeResult, i: int, deconv: bool) -> Shape | None:
    p = lp.convolution_param
    axis = p.axis if p.axis >= 0 else len(b) + p.axis
    n = len(b) - axis - 1
    geo = conv_geometry(p, n)
    if geo is None or n < 1:
        return None
    k, s, pd, d = geo
    out: list[Dim] = [*b[:axis], p.num_output]
    for a in range(n):
        size = b[axis + 1 + a]
        ext = kernel_extent(k[a], d[a])
        if size is None or s[a] <= 0:  # stride 0: the builder refuses it
            out.append(None)
        elif deconv:
            out.append(deconv_out(size, k[a], s[a], pd[a], d[a]))
        else:
            if size + 2 * pd[a] < ext and not any(x.layer == i for x in res.issues):
                res.issues.append(ShapeIssue(
                    "C2T304", i, f"kernel {ext} (axis {axis + 1 + a}) of Convolution "
                    f"'{lp.name}' is larger than its padded input {size}+2*{pd[a]}="
                    f"{size + 2 * pd[a]} (input {_fmt(b)})", "convolution_param"))
            out.append(max(0, conv_out(size, k[a], s[a], pd[a], d[a])))
    return tuple(out)


def _pool(lp: Any, b: Shape, res: ShapeResult, i: int) -> Shape | None:
    p = lp.pooling_param
    if len(b) != 4:
        return None
    if p.global_pooling:
        return (b[0], b[1], 1, 1)
    if p.HasField("kernel_h"):
        k = [p.kernel_h, p.kernel_w]
    elif p.HasField("kernel_size"):
        k = [p.kernel_size] * 2
    else:
        return None
    s = [p.stride_h, p.stride_w] if p.HasField("stride_h") else [p.stride] * 2
    pd = [p.pad_h, p.pad_w] if p.HasField("pad_h") else [p.pad] * 2
    ceil = pool_ceil_mode(p)
    out: list[Dim] = [b[0], b[1]]
    for a in range(2):
        size = b[2 + a]
        if size is None or s[a] <= 0:
            out.append(None)
            continue
        o = pooled_size(size, k[a], s[a], pd[a], ceil)
        if size + 2 * pd[a] < k[a] and not any(x.layer == i for x in res.issues):
            res.issues.append(ShapeIssue(
                "C2T304", i, f"kernel {k[a]} of Pooling '{lp.name}' is larger than its padded "
                f"input {size}+2*{pd[a]}={size + 2 * pd[a]} (input {_fmt(b)})"
                + ("" if o <= 0 else f"; Caffe clips the window to a {o}-wide output"),
                "pooling_param", None if o <= 0 else "warning"))
        out.append(o)
    return tuple(out)


def _fmt(s: Shape | None) -> str:
    return "x".join("?" if d is None else str(d) for d in s) if s is not None else "?"


def _ip(lp: Any, b: Shape) -> Shape:
    p = lp.inner_product_param
    axis = p.axis if p.axis >= 0 else len(b) + p.axis
    return (*b[:axis], p.num_output)


def prod(dims: Iterable[Dim]) -> Dim:
    out = 1
    for d in dims:
        if d is None:
            return None
        out *= d
    return out


def _concat(lp: Any, bs: list[Shape | None], res: ShapeResult, i: int) -> Shape | None:
    p = lp.concat_param
    known = [b for b in bs if b is not None]
    if len(known) != len(bs) or not known:
        return None
    rank = len(known[0])
    axis = p.concat_dim if p.HasField("concat_dim") else p.axis
    axis = axis if axis >= 0 else rank + axis
    if any(len(b) != rank for b in known) or not 0 <= axis < rank:
        return None
    first = known[0]
    for j, b in enumerate(known[1:], 1):
        bad = [a for a in range(rank) if a != axis and None not in (b[a], first[a])
               and b[a] != first[a]]
        if bad:
            res.issues.append(ShapeIssue(
                "C2T305", i, f"Concat '{lp.name}' joins along axis {axis}, but bottom "
                f"'{lp.bottom[j]}' is {_fmt(b)} and bottom '{lp.bottom[0]}' is {_fmt(first)} "
                f"(axis {bad[0]} differs)", None))
            return None
    out = list(first)
    sizes = [b[axis] for b in known]
    out[axis] = None if None in sizes else sum(sizes)
    return tuple(out)


def _eltwise(lp: Any, bs: list[Shape | None], res: ShapeResult, i: int) -> Shape | None:
    known = [(j, b) for j, b in enumerate(bs) if b is not None]
    if not known:
        return None
    j0, first = known[0]
    for j, b in known[1:]:
        if len(b) != len(first) or any(None not in (x, y) and x != y for x, y in zip(b, first)):
            res.issues.append(ShapeIssue(
                "C2T306", i, f"Eltwise '{lp.name}' needs bottoms of one shape: "
                f"'{lp.bottom[j]}' is {_fmt(b)}, '{lp.bottom[j0]}' is {_fmt(first)}", None))
            return None
    return first


def _flatten(lp: Any, b: Shape) -> Shape:
    p = lp.flatten_param
    a = p.axis if p.axis >= 0 else len(b) + p.axis
    e = p.end_axis if p.end_axis >= 0 else len(b) + p.end_axis
    return (*b[:a], prod(b[a:e + 1]), *b[e + 1:])


def _reshape(lp: Any, b: Shape) -> Shape | None:
    p = lp.reshape_param
    axis = p.axis if p.axis >= 0 else len(b) + p.axis + 1
    end = len(b) if p.num_axes == -1 else axis + p.num_axes
    dims: list[Dim] = []
    for k, d in enumerate(p.shape.dim):
        dims.append(b[axis + k] if d == 0 and axis + k < len(b) else (d if d != -1 else -1))
    out = [*b[:axis], *dims, *b[end:]]
    if -1 in out:
        total, rest = prod(b), prod(d for d in out if d != -1)
        fill = total // rest if total is not None and rest else None
        out = [fill if d == -1 else d for d in out]
    return tuple(out)


def _slice(lp: Any, b: Shape) -> list[Shape | None] | None:
    p = lp.slice_param
    axis = p.slice_dim if p.HasField("slice_dim") else p.axis
    axis = axis if axis >= 0 else len(b) + axis
    n = len(lp.top)
    size = b[axis] if 0 <= axis < len(b) else None
    if size is None:
        return None
    points = list(p.slice_point)
    if points:
        bounds = [0, *points, size]
        sizes = [bounds[k + 1] - bounds[k] for k in range(len(bounds) - 1)]
    else:
        sizes = [size // n] * n
    return [tuple(s if a == axis else d for a, d in enumerate(b)) for s in sizes]


def _data_shapes(lp: Any) -> list[Shape | None] | None:
    t = lp.type
    crop = lp.transform_param.crop_size if lp.transform_param.HasField("crop_size") else None
    if t == "Input":
        shapes = [tuple(s.dim) for s in lp.input_param.shape]
        if not shapes:
            return None
        return [shapes[k] if k < len(shapes) else shapes[0] for k in range(len(lp.top))]
    if t == "DummyData":
        p = lp.dummy_data_param
        if p.shape:
            return [tuple(p.shape[k if k < len(p.shape) else 0].dim) for k in range(len(lp.top))]
        if p.num:
            return [(_rep(p.num, k, 1), _rep(p.channels, k, 1), _rep(p.height, k, 1),
                     _rep(p.width, k, 1)) for k in range(len(lp.top))]
        return None
    if t == "MemoryData":
        p = lp.memory_data_param
        h, w = (crop, crop) if crop else (p.height, p.width)
        return [(p.batch_size, p.channels, h, w), (p.batch_size,)]
    if t == "ImageData":
        p = lp.image_data_param
        c = 3 if p.is_color else 1
        if crop:
            h = w = crop
        elif p.new_height and p.new_width:
            h, w = p.new_height, p.new_width
        else:
            h = w = None
        return [(p.batch_size, c, h, w), (p.batch_size,)]
    if t == "Data":
        p = lp.data_param
        return [(p.batch_size or None, None, crop, crop), (p.batch_size or None,)]
    return None


def infer(layers: Sequence[Any], indices: Iterable[int]) -> ShapeResult:
    """Shapes of every blob of the net state whose layers are ``indices``."""
    res = ShapeResult()
    blobs = res.blobs
    for i in indices:
        lp = layers[i]
        bs = [blobs.get(b) for b in lp.bottom]
        res.bottoms[i] = bs
        tops = _tops(lp, bs, res, i)
        for k, t in enumerate(lp.top):
            blobs[t] = tops[k] if tops is not None and k < len(tops) else None
    return res


def _tops(lp: Any, bs: list[Shape | None], res: ShapeResult, i: int) -> list[Shape | None] | None:
    t = lp.type
    if not lp.bottom:
        return _data_shapes(lp)
    b = bs[0]
    if t == "Concat":
        return [_concat(lp, bs, res, i)]
    if t == "Eltwise":
        return [_eltwise(lp, bs, res, i)]
    if t == "Split":
        return [b] * len(lp.top)
    if t.endswith("Loss") or t in _SCALAR:
        return [()] * len(lp.top)
    if b is None:
        return None
    if t in _SAME:
        return [b] * len(lp.top)
    if t in ("Convolution", "Deconvolution"):
        out = [_conv(lp, x, res, i, t == "Deconvolution") if x is not None else None
               for x in bs]
        return out
    if t == "Pooling":
        o = _pool(lp, b, res, i)
        return [o, o]
    if t == "InnerProduct":
        return [_ip(lp, b)]
    if t == "Flatten":
        return [_flatten(lp, b)]
    if t == "Reshape":
        return [_reshape(lp, b)]
    if t == "Slice":
        return _slice(lp, b)
    if t == "Crop" and len(bs) == 2 and bs[1] is not None:
        axis = lp.crop_param.axis
        axis = axis if axis >= 0 else len(b) + axis
        return [(*b[:axis], *bs[1][axis:])]
    return None


def param_shapes(lp: Any, bottoms: Sequence[Shape | None]) -> list[Shape | None] | None:
    """The param blob shapes of layer ``lp`` (caffemodel order) from its settings and its
    bottom shapes, for the types whose params are shared in practice (Convolution,
    Deconvolution, InnerProduct, Embed, BatchNorm); None for other types. An entry is
    None where the blob's shape depends on what is not known here."""
    t = lp.type
    b = bottoms[0] if bottoms else None
    if t in ("Convolution", "Deconvolution"):
        p = lp.convolution_param
        bias: list[Shape | None] = [(p.num_output,)] if p.bias_term else []
        axis = (p.axis if p.axis >= 0 else len(b) + p.axis) if b is not None else 1
        geo = conv_geometry(p, len(b) - axis - 1) if b is not None else None
        if b is None or geo is None or not 0 <= axis < len(b):
            return [None, *bias]
        channels, group = b[axis], p.group or 1
        w: Shape = ((channels, p.num_output // group, *geo[0]) if t == "Deconvolution"
                    else (p.num_output, None if channels is None else channels // group,
                          *geo[0]))
        return [w, *bias]
    if t == "InnerProduct":
        p = lp.inner_product_param
        bias = [(p.num_output,)] if p.bias_term else []
        if b is None:
            return [None, *bias]
        axis = p.axis if p.axis >= 0 else len(b) + p.axis
        k = prod(b[axis:])
        return [(k, p.num_output) if p.transpose else (p.num_output, k), *bias]
    if t == "Embed":
        p = lp.embed_param
        return [(p.input_dim, p.num_output), *([(p.num_output,)] if p.bias_term else [])]
    if t == "BatchNorm":
        c = b[1] if b is not None and len(b) > 1 else None
        return [(c,), (c,), (1,)]
    return None
