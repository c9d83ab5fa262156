"""The torch-free shape pass: blob shapes from the net text alone (Input, DummyData,
MemoryData, ImageData sizes; crop_size), propagated through the layer types whose output
shape Caffe computes from settings, and the param blob shapes of the layers that share
params most. A dimension it cannot know is None and the checks that need it are skipped.
Formulas follow the Reshape() of each Caffe layer, each written once as a function over
shapes with unknown dims (conv_shape, pool_shape, concat_shape, ...) that the builder's
modules call too (their ``infer_shapes``); settings are read by ir.geometry's readers.
The linter and ``info`` run the pass; tests/ir/test_shape_agreement.py holds it to the
builder's shapes over the fixtures and the corpus. Types it does not cover get unknown
tops here and meta-tensor shapes in the builder."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from caffe2torch.ir.geometry import (
    ConvGeometry,
    ParamProblem,
    PoolWindow,
    kernel_extent,
    read_conv_geometry,
    read_pool_window,
)

Dim = int | None
Shape = tuple[Dim, ...]
S = TypeVar("S")
D = TypeVar("D", int, int | None)

# Types whose only top has the shape of their first bottom.
_SAME = frozenset({
    "ReLU", "PReLU", "ELU", "Sigmoid", "TanH", "AbsVal", "BNLL", "Power", "Exp", "Log",
    "Threshold", "Clip", "Swish", "Dropout", "LRN", "BatchNorm", "Scale", "Bias", "MVN",
    "Softmax", "BN", "ShuffleChannel", "CosinAddm", "AdaCosAddmScale",
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
    tops: dict[int, list[Shape | None]] = field(default_factory=dict)
    issues: list[ShapeIssue] = field(default_factory=list)


def _rep(values: Sequence[int], i: int, default: int) -> int:
    if not values:
        return default
    return int(values[i] if len(values) > i else values[0])


# ----------------------------------------------------------------------------- the rules
# One function per Caffe Reshape() rule, over shapes whose unknown dims are None; the
# builder's modules call them with known shapes (their infer_shapes) and take :func:`known`.


def known(shape: Shape) -> tuple[int, ...]:
    """``shape`` with every dim known (the builder's shapes always are)."""
    if any(d is None for d in shape):
        raise ValueError(f"shape {_fmt(shape)} has an unknown dim")
    return tuple(int(d) for d in shape if d is not None)


def same_shape(bottoms: Sequence[S]) -> S:
    """The top of an elementwise layer (neurons, Dropout, BatchNorm, Scale, LRN, Softmax,
    Eltwise, Split): its first bottom's shape."""
    return bottoms[0]


def conv_shape(bottom: Shape, axis: int, num_output: int, geom: ConvGeometry,
               transposed: bool = False) -> Shape:
    """A (de)convolution's top (BaseConvolutionLayer::Reshape): the axes before ``axis``,
    num_output channels, then compute_output_shape per spatial axis."""
    return (*bottom[:axis], num_output, *geom.output_dims(bottom[axis + 1:], transposed))


def pool_shape(bottom: Shape, window: PoolWindow) -> Shape:
    """Pooling's top (PoolingLayer::Reshape): N x C x pooled H x pooled W."""
    return (bottom[0], bottom[1], *window.output_dims(bottom[2:4]))


def inner_product_shape(bottom: Shape, axis: int, num_output: int) -> Shape:
    """InnerProduct's top: the axes before ``axis``, then num_output."""
    return (*bottom[:axis], num_output)


def margin_inner_product_shapes(bottom: Shape, axis: int, num_output: int,
                                num_tops: int) -> list[Shape]:
    """MarginInnerProduct (SphereFace's A-Softmax, MarginInnerProductLayer::Reshape): an
    InnerProduct's top, then, when asked for, the current lambda as a 1-element blob."""
    return [inner_product_shape(bottom, axis, num_output), (1,)][:num_tops]


def label_specific_shapes(scores: Shape, num_tops: int) -> list[Shape]:
    """happynear's LabelSpecificRescale and LabelSpecificAdd (their Reshape): the scores'
    shape, then, when asked for, the scalar of this forward as a 1-element blob (the
    positive weight, the added bias)."""
    return [scores, (1,)][:num_tops]


def multibox_loss_problem(loc: Shape, conf: Shape, prior: Shape, num_classes: int,
                          share_location: bool) -> str | None:
    """SSD's MultiBoxLoss (MultiBoxLossLayer::Reshape): the priors' legacy height / 4 is the
    number of priors P; the location bottom needs P * L * 4 channels (L = 1 with
    share_location, else num_classes), the confidence bottom P * num_classes, and both the
    same num. What is wrong, or None (also when a dimension is unknown). Its top is the
    scalar loss of every LossLayer."""
    if max(len(loc), len(conf), len(prior)) > 4:
        return "MultiBoxLoss reads legacy blobs of at most 4 axes"
    (n_loc, c_loc, _, _), (n_conf, c_conf, _, _) = legacy_4d(loc), legacy_4d(conf)
    height = legacy_4d(prior)[2]
    if n_loc is None or c_loc is None or n_conf is None or c_conf is None or height is None:
        return None
    priors = height // 4
    loc_classes = 1 if share_location else num_classes
    if n_loc != n_conf:
        return f"the location ({n_loc}) and confidence ({n_conf}) bottoms differ in num"
    if c_loc != priors * loc_classes * 4:
        return (f"the location bottom has {c_loc} channels, not {priors} priors x "
                f"{loc_classes} x 4 = {priors * loc_classes * 4} (the fork: 'Number of priors "
                "must match number of location predictions.')")
    if c_conf != priors * num_classes:
        return (f"the confidence bottom has {c_conf} channels, not {priors} priors x "
                f"{num_classes} classes = {priors * num_classes} (the fork: 'Number of priors "
                "must match number of confidence predictions.')")
    return None


def channel_scale_shape(data: S) -> S:
    """happynear's ChannelScale (ChannelScaleLayer::Reshape): the top is like bottom 0."""
    return data


def channel_scale_mismatch(data: Shape, scale: Shape) -> str | None:
    """ChannelScaleLayer::LayerSetUp's checks, or None when they pass (or cannot be told):
    bottom 0 is a legacy blob of at most 4 axes, and bottom 1 has its num and one value per
    item and spatial position (count / channels)."""
    if len(data) > 4:
        return f"bottom 0 must have at most 4 axes (num, channels, height, width), got {_fmt(data)}"
    dims, scales = [d for d in data if d is not None], [d for d in scale if d is not None]
    if len(dims) < len(data) or len(scales) < len(scale):
        return None
    n, c, _, _ = legacy_4d(dims)
    per_item = math.prod(dims) // c if c else 0
    if not scales or scales[0] != n or math.prod(scales) != per_item:
        return (f"bottom 1 {_fmt(scale)} must hold one scale per item and spatial position "
                f"of bottom 0 {_fmt(data)}: num {n} and {per_item} values")
    return None


def legacy_4d(shape: Sequence[D]) -> tuple[D | int, D | int, D | int, D | int]:
    """Blob's num/channels/height/width accessors: missing axes count as 1."""
    if len(shape) > 4:
        raise ValueError(f"a legacy 4-axis blob cannot have shape {list(shape)}")
    dims: list[Any] = [*shape, *[1] * (4 - len(shape))]
    return dims[0], dims[1], dims[2], dims[3]


def is_feature_normalize(layer: Any, rank: int, num_tops: int) -> bool:
    """Whether a "Normalize" layer is NormFace's (normalize_param) rather than SSD's
    (norm_param): the block written decides; with neither, NormFace's when it has two tops
    (the second is the norm) or a bottom without spatial axes (SSD normalises maps)."""
    if layer.HasField("normalize_param"):
        return True
    if layer.HasField("norm_param"):
        return False
    return num_tops == 2 or rank < 4


def normalize_shapes(layer: Any, bottom: Shape, num_tops: int) -> list[Shape]:
    """Normalize's tops: SSD's keeps the bottom's shape; NormFace's is the legacy 4-D
    (num, channels, height, width), its second top the norm (num, 1, height, width)."""
    if not is_feature_normalize(layer, len(bottom), num_tops):
        return [bottom]
    n, c, h, w = legacy_4d(bottom)
    out: list[Shape] = [(n, c, h, w), (n, 1, h, w)]
    return out[:num_tops]


def concat_shape(bottoms: Sequence[Shape], axis: int) -> Shape:
    """Concat's top: the first bottom's shape with the sizes along ``axis`` summed."""
    out = list(bottoms[0])
    sizes = [b[axis] for b in bottoms]
    out[axis] = None if None in sizes else sum(d for d in sizes if d is not None)
    return tuple(out)


# ----------------------------------------------------------------------------- the pass


def _axis(axis: int, rank: int) -> int | None:
    """Blob::CanonicalAxisIndex, or None when ``axis`` is out of range."""
    return axis + rank if -rank <= axis < 0 else axis if 0 <= axis < rank else None


def _conv(lp: Any, b: Shape, res: ShapeResult, i: int, deconv: bool) -> Shape | None:
    p = lp.convolution_param
    axis = _axis(p.axis, len(b))
    if axis is None or not 0 <= len(b) - axis - 1 <= 3:
        return None
    n = len(b) - axis - 1
    geom = read_conv_geometry(p, n)
    if isinstance(geom, ParamProblem):
        return None
    out = conv_shape(b, axis, p.num_output, geom, deconv)
    if deconv:
        return out
    for a in range(n):
        size = b[axis + 1 + a]
        pad = geom.pad[a]
        ext = kernel_extent(geom.kernel[a], geom.dilation[a])
        if size is not None and size + 2 * pad < ext and not any(
                x.layer == i for x in res.issues):
            res.issues.append(ShapeIssue(
                "C2T304", i, f"kernel {ext} (axis {axis + 1 + a}) of Convolution "
                f"'{lp.name}' is larger than its padded input {size}+2*{pad}="
                f"{size + 2 * pad} (input {_fmt(b)})", "convolution_param"))
    return tuple(None if d is None else max(0, d) for d in out)


def _pool(lp: Any, b: Shape, res: ShapeResult, i: int) -> Shape | None:
    if len(b) != 4:
        return None
    window = read_pool_window(lp.pooling_param)
    if isinstance(window, ParamProblem):
        return None
    out = pool_shape(b, window)
    kernel = window.kernel
    if kernel is None:  # global pooling: one window over the whole plane
        return out
    for a in range(2):
        size, o, k, pd = b[2 + a], out[2 + a], kernel[a], window.pad[a]
        if size is None or o is None or size + 2 * pd >= k or any(
                x.layer == i for x in res.issues):
            continue
        res.issues.append(ShapeIssue(
            "C2T304", i, f"kernel {k} of Pooling '{lp.name}' is larger than its padded "
            f"input {size}+2*{pd}={size + 2 * pd} (input {_fmt(b)})"
            + ("" if o <= 0 else f"; Caffe clips the window to a {o}-wide output"),
            "pooling_param", None if o <= 0 else "warning"))
    return out


def _fmt(s: Shape | None) -> str:
    return "x".join("?" if d is None else str(d) for d in s) if s is not None else "?"


def _ip(lp: Any, bs: list[Shape | None]) -> Shape | None:
    p = lp.inner_product_param
    b = bs[0]
    axis = _axis(p.axis, len(b)) if b is not None else None
    if b is None or axis is None:
        return None
    if len(bs) == 2:  # happynear's fork: the weight is the second bottom
        w = bs[1]
        n = None if w is None or len(w) < 2 else w[1] if p.transpose else w[0]
        return (*b[:axis], n)
    return inner_product_shape(b, axis, p.num_output)


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
    return concat_shape(known, axis)


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


def memory_data_shapes(p: Any) -> list[Shape]:
    """MemoryData's tops: (batch, channels, height, width) as set (the transformed size),
    and the label, which MemoryDataLayer::Forward_cpu reshapes to (batch, 1, 1, 1)."""
    return [(p.batch_size, p.channels, p.height, p.width), (p.batch_size, 1, 1, 1)]


def image_data_shapes(p: Any, crop: int | tuple[int, int],
                      first_image: tuple[int, int] | None = None) -> list[Shape]:
    """ImageData's tops (ImageDataLayer::DataLayerSetUp): (batch, 3 or 1 channels, crop x
    crop, else new_height x new_width, else the first listed image's size), and the label
    (batch,). ``crop``: crop_size, or a fork's (height, width) crop where 0 leaves that axis
    uncropped (data.crop). ``first_image``: that size when the list can be read (else
    unknown)."""
    ch, cw = (crop, crop) if isinstance(crop, int) else crop
    hw: tuple[Dim, Dim] = (None, None) if first_image is None else first_image
    if p.new_height > 0 and p.new_width > 0:
        hw = (p.new_height, p.new_width)
    hw = (ch if ch > 0 else hw[0], cw if cw > 0 else hw[1])
    return [(p.batch_size, 3 if p.is_color else 1, *hw), (p.batch_size,)]


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
        return list(memory_data_shapes(lp.memory_data_param))
    if t == "ImageData":
        return list(image_data_shapes(lp.image_data_param, crop or 0))
    if t == "Data":
        p = lp.data_param
        return [(p.batch_size or None, None, crop, crop), (p.batch_size or None,)]
    return None


def infer(layers: Sequence[Any], indices: Iterable[int],
          given: Mapping[str, Sequence[int]] | None = None) -> ShapeResult:
    """Shapes of every blob of the net state whose layers are ``indices``. ``given``:
    {top: shape} for the tops of source layers (--input-shape, the builder's
    ``input_shapes``), used where every top of the layer has one."""
    res = ShapeResult()
    blobs = res.blobs
    for i in indices:
        lp = layers[i]
        bs = [blobs.get(b) for b in lp.bottom]
        res.bottoms[i] = bs
        if given and not lp.bottom and lp.top and all(t in given for t in lp.top):
            tops: list[Shape | None] | None = [tuple(int(d) for d in given[t]) for t in lp.top]
        else:
            tops = _tops(lp, bs, res, i)
        res.tops[i] = [tops[k] if tops is not None and k < len(tops) else None
                       for k in range(len(lp.top))]
        for t, shape in zip(lp.top, res.tops[i]):
            blobs[t] = shape
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
        return [same_shape(bs)] * len(lp.top)
    if t == "MultiBoxLoss":  # SSD: the scalar loss (multibox_loss_problem checks bottoms)
        return [()]
    if t.endswith("Loss") or t in _SCALAR:
        # LossLayer::Reshape: the loss is a scalar; other tops are each layer's own
        return [(), *[None] * (len(lp.top) - 1)]
    if b is None:
        return None
    if t in _SAME:
        return [same_shape(bs)] * len(lp.top)
    if t in ("Convolution", "Deconvolution"):
        out = [_conv(lp, x, res, i, t == "Deconvolution") if x is not None else None
               for x in bs]
        return out
    if t == "Pooling":
        o = _pool(lp, b, res, i)
        return [o, o]
    if t == "InnerProduct":
        return [_ip(lp, bs)]
    if t == "MarginInnerProduct":
        p = lp.margin_inner_product_param
        axis = _axis(p.axis, len(b))
        return None if axis is None else list(
            margin_inner_product_shapes(b, axis, p.num_output, len(lp.top)))
    if t in ("LabelSpecificRescale", "LabelSpecificAdd"):
        return list(label_specific_shapes(b, len(lp.top)))
    if t == "ChannelScale":
        return [channel_scale_shape(b)]
    if t == "Normalize" and len(b) <= 4:
        return list(normalize_shapes(lp, b, len(lp.top)))
    if t == "Axpy" and len(bs) == 3:  # y += a * x: AxpyLayer::Reshape, top like x
        return [bs[1]]
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
        axis = _axis(p.axis, len(b)) if b is not None else None
        if b is None or axis is None:
            return [None, *bias]
        geo = read_conv_geometry(p, len(b) - axis - 1)
        if isinstance(geo, ParamProblem):
            return [None, *bias]
        channels, group = b[axis], p.group or 1
        w: Shape = ((channels, p.num_output // group, *geo.kernel) if t == "Deconvolution"
                    else (p.num_output, None if channels is None else channels // group,
                          *geo.kernel))
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
