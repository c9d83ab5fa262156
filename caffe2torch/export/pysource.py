"""Layer modules -> lines of standalone PyTorch source.

One emitter per layer module class (``@emitter(CaffeReLU)``), so fork layer types that
build a BVLC module (ConvolutionDepthwise -> CaffeConvolution) are covered too. An emitter
reads the module's settings and the net's static shapes and writes plain
``torch.nn.functional`` calls with constants; a Caffe rule with no single torch call is a
call of the layer's own functional core, whose source goes into the file
(caffe2torch.layers.portable). Parameters become attributes
of the generated module (a shared Caffe param is one attribute).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from caffe2torch.errors import ExportError
from caffe2torch.ir.graph import LayerIR
from caffe2torch.layers.bvlc import blob_ops, neuron, normalization, vision
from caffe2torch.layers.portable import portable_object
from caffe2torch.numerics import as_f32

Shape = tuple[int, ...]


@dataclass
class ModuleSource:
    """What the generated module is made of, filled by the emitters."""

    init: list[str] = field(default_factory=list)  # lines of __init__ (after super())
    state: dict[str, torch.Tensor] = field(default_factory=dict)  # state_dict of the module
    helpers: list[str] = field(default_factory=list)  # portable names, first use order
    attrs: set[str] = field(default_factory=set)
    by_tensor: dict[int, str] = field(default_factory=dict)  # id(Parameter) -> attribute

    def fresh(self, base: str) -> str:
        from caffe2torch.graph.names import identifier

        name, n = identifier(base), 1
        while name in self.attrs or name in _RESERVED_ATTRS:
            n += 1
            name = f"{identifier(base)}_{n}"
        self.attrs.add(name)
        return name


_RESERVED_ATTRS = frozenset({"forward", "inputs", "outputs", "training"})


@dataclass
class Emit:
    """One layer being written: its module, static shapes and variable names."""

    layer: LayerIR
    # The layer's module, an instance of the class its emitter was registered for (emitters
    # are looked up by type(module)), so each emitter reads that class's own attributes.
    module: Any
    bottoms: list[str]  # variable names of the bottoms
    tops: list[str]  # variable names of the tops
    bottom_shapes: list[Shape]
    top_shapes: list[Shape]
    out: ModuleSource
    base: str  # identifier made from the layer name

    def param(self, index: int, what: str) -> str:
        """``self.<attr>`` of the module's blob ``index`` (one attribute per shared param)."""
        blob = self.module.blobs[index]
        key = id(blob)
        if key not in self.out.by_tensor:
            attr = self.out.fresh(f"{self.base}_{what}")
            self.out.by_tensor[key] = attr
            dims = ", ".join(str(d) for d in blob.shape) or "()"
            grad = "" if blob.requires_grad else ", requires_grad=False"
            self.out.init.append(f"self.{attr} = nn.Parameter(torch.empty({dims}){grad})")
            self.out.state[attr] = blob.detach().clone()
        return f"self.{self.out.by_tensor[key]}"

    def buffer(self, value: torch.Tensor, what: str) -> str:
        attr = self.out.fresh(f"{self.base}_{what}")
        dims = ", ".join(str(d) for d in value.shape) or "()"
        self.out.init.append(f"self.register_buffer({attr!r}, torch.empty({dims}))")
        self.out.state[attr] = value.detach().clone()
        return f"self.{attr}"

    def use(self, helper: str) -> None:
        """Put the portable object ``helper`` (and what it uses) into the file."""
        portable_object(helper)  # a KeyError here is a bug of the emitter
        if helper not in self.out.helpers:
            self.out.helpers.append(helper)

    def local(self, what: str) -> str:
        """A new local variable of forward for this layer (a leading _ keeps it apart from
        the blob variables)."""
        return self.out.fresh(f"_{self.base}_{what}")

    def call(self, helper: str, args: str) -> str:
        """``helper(args)``, with the portable function ``helper`` put into the file."""
        self.use(helper)
        return f"{helper}({args})"

    def submodule(self, helper: str, args: str) -> str:
        """``self.<attr>``, a new instance ``helper(args)`` of a portable module class."""
        self.use(helper)
        attr = self.out.fresh(self.base)
        self.out.init.append(f"self.{attr} = {helper}({args})")
        return f"self.{attr}"

    def unsupported(self, why: str) -> ExportError:
        return ExportError(
            f"layer '{self.layer.name}' ({self.layer.type}): no standalone source for {why}",
            hint="convert the part before it with --outputs BLOB, or keep using caffe2torch "
            "for this net",
        )

    def assign(self, expr: str) -> list[str]:
        return [f"{self.tops[0]} = {expr}"]

    def assign_leading(self, call: str) -> list[str]:
        """The tops from ``call``, which returns a tuple (the tops first): its first value
        for a one-top layer, else as many values as the layer has tops."""
        if len(self.tops) == 1:
            return self.assign(f"{call}[0]")
        return [f"{', '.join(self.tops)} = {call}[:{len(self.tops)}]"]


Emitter = Callable[[Emit], list[str]]
EMITTERS: dict[type, Emitter] = {}


def emitter(*classes: type) -> Callable[[Emitter], Emitter]:
    def register(fn: Emitter) -> Emitter:
        for cls in classes:
            EMITTERS[cls] = fn
        return fn

    return register


def emit_layer(e: Emit) -> list[str]:
    fn = EMITTERS.get(type(e.module))
    if fn is None:
        raise e.unsupported(f"module {type(e.module).__name__}")
    return fn(e)


def num(value: float) -> str:
    """A float constant as the shortest text that reads back as the same float32."""
    text = repr(as_f32(value))
    return text[:-2] if text.endswith(".0") else text


def tup(values: Sequence[int]) -> str:
    values = [int(v) for v in values]
    if len(set(values)) == 1:
        return str(values[0])
    return "(" + ", ".join(map(str, values)) + ")"


def _kwargs(pairs: Sequence[tuple[str, str, str]]) -> str:
    """``, name=value`` for each (name, value, default) where value != default."""
    return "".join(f", {k}={v}" for k, v, d in pairs if v != d)


# ----------------------------------------------------------------------------- vision


@emitter(vision.CaffeConvolution)
def _conv(e: Emit) -> list[str]:
    m = e.module
    g = m.geometry
    n = len(g.kernel)
    if m.axis != 1 or not 1 <= n <= 3:
        raise e.unsupported(f"a convolution over axis {m.axis} with {n} spatial axes")
    w = e.param(0, "weight")
    b = e.param(1, "bias") if len(m.blobs) > 1 else "None"
    lines = []
    for x, top in zip(e.bottoms, e.tops):
        if m.transposed:
            kw = _kwargs([("stride", tup(g.stride), "1"), ("padding", tup(g.pad), "0"),
                          ("groups", str(m.group), "1"), ("dilation", tup(g.dilation), "1")])
            lines.append(f"{top} = F.conv_transpose{n}d({x}, {w}, {b}{kw})")
        else:
            kw = _kwargs([("stride", tup(g.stride), "1"), ("padding", tup(g.pad), "0"),
                          ("dilation", tup(g.dilation), "1"), ("groups", str(m.group), "1")])
            lines.append(f"{top} = F.conv{n}d({x}, {w}, {b}{kw})")
    return lines


@emitter(vision.CaffeInnerProduct)
def _inner_product(e: Emit) -> list[str]:
    m = e.module
    x = e.bottoms[0]
    if len(e.bottom_shapes[0]) != m.axis + 1:
        x = f"{x}.flatten({m.axis})"
    w = e.param(0, "weight")
    if m.transpose:
        w += ".t()"
    b = e.param(1, "bias") if len(m.blobs) > 1 else "None"
    return e.assign(f"F.linear({x}, {w}, {b})")


@emitter(vision.CaffePooling)
def _pooling(e: Emit) -> list[str]:
    m = e.module
    x = e.bottoms[0]
    if m.method not in (vision.MAX, vision.AVE):
        raise e.unsupported("STOCHASTIC pooling")
    is_max = m.method == vision.MAX
    # the mask top (MAX only): argmax h * W + w of each window, as a float blob
    mask = m.with_mask and len(e.tops) > 1
    if m.kernel is None and not mask:  # global pooling: the window is the whole plane
        if is_max:
            return e.assign(f"torch.amax({x}, dim=(2, 3), keepdim=True)")
        return e.assign(f"{x}.mean(dim=(2, 3), keepdim=True)")
    return _pool(e, x, "MAX" if is_max else "AVE", m.kernel, m.stride, m.pad, m.ceil_mode, mask)


def _pool(
    e: Emit, x: str, method: str, kernel: Any, stride: Any, pad: Any, ceil: bool, mask: bool
) -> list[str]:
    if not mask:
        return e.assign(pool_expr(e, x, method, kernel, stride, pad, ceil))
    geom = _pool_geometry(e, kernel, stride, pad, ceil)
    if geom.torch_ceil_mode is None:
        args = f"{x}, {method!r}, {geom.kernel}, {geom.stride}, {geom.pad}, {geom.out}"
        return [f"{e.tops[0]}, {e.tops[1]} = "
                f"{e.call('caffe_pool_padded', args + ', with_mask=True')}"]
    index = e.local("index")
    args = _native_pool_args(x, geom)
    return [f"{e.tops[0]}, {index} = F.max_pool2d({args}, return_indices=True)",
            f"{e.tops[1]} = {index}.to({x}.dtype)"]


def _pool_geometry(e: Emit, kernel: Any, stride: Any, pad: Any, ceil: bool) -> Any:
    shape = e.bottom_shapes[0]
    size = (int(shape[2]), int(shape[3]))
    window = (int(kernel[0]), int(kernel[1])) if kernel is not None else size
    return vision.PoolGeometry.make(size, window, (int(stride[0]), int(stride[1])),
                                    (int(pad[0]), int(pad[1])), ceil)


def _native_pool_args(x: str, geom: Any) -> str:
    kw = _kwargs([("padding", tup(geom.pad), "0"),
                  ("ceil_mode", str(geom.torch_ceil_mode), "False")])
    return f"{x}, {tup(geom.kernel)}, {tup(geom.stride)}{kw}"


def pool_expr(e: Emit, x: str, method: str, kernel: Any, stride: Any, pad: Any,
              ceil: bool = True) -> str:
    """Caffe's MAX or AVE pooling of ``x`` (of the layer's first bottom shape): torch's own
    pooling where the library's PoolGeometry says it has Caffe's windows, else the
    library's explicit padding (caffe_pool_padded)."""
    geom = _pool_geometry(e, kernel, stride, pad, ceil)
    if geom.torch_ceil_mode is None:
        args = f"{x}, {method!r}, {geom.kernel}, {geom.stride}, {geom.pad}, {geom.out}"
        return f"{e.call('caffe_pool_padded', args)}[0]"
    torch_pool = "F.max_pool2d" if method == "MAX" else "F.avg_pool2d"
    return f"{torch_pool}({_native_pool_args(x, geom)})"


@emitter(vision.CaffeLRN)
def _lrn(e: Emit) -> list[str]:
    m = e.module
    args = f"{e.bottoms[0]}, {m.size}, {num(m.alpha)}, {num(m.beta)}, {num(m.k)}, {m.within}"
    return e.assign(e.call("caffe_lrn", args))


# ----------------------------------------------------------------------------- neurons


@emitter(neuron.CaffeReLU)
def _relu(e: Emit) -> list[str]:
    slope = e.module.negative_slope
    x = e.bottoms[0]
    return e.assign(f"F.leaky_relu({x}, {num(slope)})" if slope else f"F.relu({x})")


@emitter(neuron.CaffePReLU)
def _prelu(e: Emit) -> list[str]:
    return e.assign(f"F.prelu({e.bottoms[0]}, {e.param(0, 'slope')}.reshape(-1))")


@emitter(neuron.CaffeSigmoid)
def _sigmoid(e: Emit) -> list[str]:
    return e.assign(f"torch.sigmoid({e.bottoms[0]})")


@emitter(neuron.CaffeTanH)
def _tanh(e: Emit) -> list[str]:
    return e.assign(f"torch.tanh({e.bottoms[0]})")


@emitter(neuron.CaffeAbsVal)
def _absval(e: Emit) -> list[str]:
    return e.assign(f"torch.abs({e.bottoms[0]})")


@emitter(neuron.CaffeBNLL)
def _bnll(e: Emit) -> list[str]:
    return e.assign(f"F.softplus({e.bottoms[0]}, beta=1.0, threshold=50.0)")


@emitter(neuron.CaffeClip)
def _clip(e: Emit) -> list[str]:
    m = e.module
    return e.assign(f"torch.clamp({e.bottoms[0]}, {num(m.low)}, {num(m.high)})")


@emitter(neuron.CaffeELU)
def _elu(e: Emit) -> list[str]:
    return e.assign(f"F.elu({e.bottoms[0]}, {num(e.module.alpha)})")


@emitter(neuron.CaffeSwish)
def _swish(e: Emit) -> list[str]:
    x, beta = e.bottoms[0], e.module.beta
    return e.assign(f"F.silu({x})" if beta == 1.0 else f"{x} * torch.sigmoid({x} * {num(beta)})")


@emitter(neuron.CaffeThreshold)
def _threshold(e: Emit) -> list[str]:
    x = e.bottoms[0]
    return e.assign(f"({x} > {num(e.module.threshold)}).to({x}.dtype)")


@emitter(neuron.CaffeDropout)
def _dropout(e: Emit) -> list[str]:
    if e.module.training:
        raise e.unsupported("Dropout in the TRAIN phase")
    x, top = e.bottoms[0], e.tops[0]
    note = f"# {e.layer.name}: Dropout is the identity at test time"
    return [note] if x == top else [note, f"{top} = {x}"]


@emitter(neuron.CaffePower)
def _power(e: Emit) -> list[str]:
    m = e.module
    x = e.bottoms[0]
    if m.power * m.scale == 0.0:  # Caffe ignores the input
        value = 1.0 if m.power == 0 else float(m.shift) ** float(m.power)
        return e.assign(f"torch.full_like({x}, {num(value)})")
    y = x if m.scale == 1 else f"{x} * {num(m.scale)}"
    if m.shift != 0:
        y = f"{y} + {num(m.shift)}"
    if m.power == 2:
        y = f"torch.square({y})"
    elif m.power != 1:
        y = f"torch.pow({y}, {num(m.power)})"
    return e.assign(y)


@emitter(neuron.CaffeExp)
def _exp(e: Emit) -> list[str]:
    m = e.module
    x = e.bottoms[0]
    y = f"torch.exp({x})" if m.inner_scale == 1 else f"torch.exp({x} * {num(m.inner_scale)})"
    return e.assign(y if m.outer_scale == 1 else f"{y} * {num(m.outer_scale)}")


@emitter(neuron.CaffeLog)
def _log(e: Emit) -> list[str]:
    m = e.module
    y = e.bottoms[0]
    if m.scale != 1:
        y = f"{y} * {num(m.scale)}"
    if m.shift != 0:
        y = f"{y} + {num(m.shift)}"
    y = f"torch.log({y})"
    return e.assign(y if m.base_scale == 1 else f"{y} * {num(m.base_scale)}")


# ----------------------------------------------------------------------------- blobs


@emitter(blob_ops.CaffeSoftmax)
def _softmax(e: Emit) -> list[str]:
    return e.assign(f"torch.softmax({e.bottoms[0]}, dim={e.module.axis})")


@emitter(blob_ops.CaffeConcat)
def _concat(e: Emit) -> list[str]:
    if len(e.bottoms) == 1:
        return e.assign(e.bottoms[0])
    return e.assign(f"torch.cat([{', '.join(e.bottoms)}], dim={e.module.axis})")


@emitter(blob_ops.CaffeSlice)
def _slice(e: Emit) -> list[str]:
    m = e.module
    if len(e.tops) == 1:
        return e.assign(e.bottoms[0])
    sizes = m.sizes(e.bottom_shapes[0][m.axis])
    return [f"{', '.join(e.tops)} = torch.split({e.bottoms[0]}, {sizes}, dim={m.axis})"]


@emitter(blob_ops.CaffeSplit)
def _split(e: Emit) -> list[str]:
    return [f"{top} = {e.bottoms[0]}" for top in e.tops if top != e.bottoms[0]]


@emitter(blob_ops.CaffeFlatten)
def _flatten(e: Emit) -> list[str]:
    m = e.module
    end = m.end_axis - len(e.bottom_shapes[0])  # negative: right for any rank
    return e.assign(f"torch.flatten({e.bottoms[0]}, {m.axis}, {end})")


@emitter(blob_ops.CaffeReshape)
def _reshape(e: Emit) -> list[str]:
    m = e.module
    bottom, top = e.bottom_shapes[0], e.top_shapes[0]
    x = e.bottoms[0]
    dims = [str(d) for d in top]
    start = m.axis if m.axis >= 0 else len(bottom) + m.axis + 1
    keeps_batch = start >= 1 or (m.dims[:1] == (0,))
    if bottom and top and keeps_batch:
        dims[0] = f"{x}.shape[0]"  # the batch axis is copied: any batch size works
    return e.assign(f"{x}.reshape({', '.join(dims)})")


@emitter(blob_ops.CaffeTile)
def _tile(e: Emit) -> list[str]:
    return e.assign(f"{e.bottoms[0]}.repeat{tuple(e.module.reps)}")


@emitter(blob_ops.CaffeCrop)
def _crop(e: Emit) -> list[str]:
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


@emitter(blob_ops.CaffeEltwise)
def _eltwise(e: Emit) -> list[str]:
    m = e.module
    xs = e.bottoms
    if m.operation == blob_ops.SUM:
        terms = [x if c == 1.0 else f"{x} * {num(c)}" for x, c in zip(xs, m.coeffs)]
        expr = terms[0]
        for t in terms[1:]:
            expr = f"{expr} - {t[1:]}" if t.startswith("-") else f"{expr} + {t}"
        return e.assign(expr)
    if m.operation == blob_ops.PROD:
        return e.assign(" * ".join(xs))
    # MAX: the library's rule for ties (blob_ops.eltwise_max)
    bottoms = ", ".join(xs)
    return e.assign(f"{e.call('eltwise_max', f'[{bottoms}]')}[0]")


@emitter(blob_ops.CaffeReduction)
def _reduction(e: Emit) -> list[str]:
    m = e.module
    x = e.bottoms[0]
    flat = f"{x}.reshape(*{x}.shape[:{m.axis}], -1)"
    if m.operation == blob_ops.R_ASUM:
        y = f"{flat}.abs().sum(-1)"
    elif m.operation == blob_ops.R_SUMSQ:
        y = f"({flat} ** 2).sum(-1)"
    else:
        y = f"{flat}.sum(-1)"
    dim = 1
    for d in e.bottom_shapes[0][m.axis:]:
        dim *= d
    coeff = blob_ops.reduction_coeff(m.operation, m.coeff, dim)
    return e.assign(y if coeff == 1.0 else f"{y} * {num(coeff)}")


# ----------------------------------------------------------------------------- normalization


@emitter(normalization.CaffeBatchNorm)
def _batch_norm(e: Emit) -> list[str]:
    m = e.module
    use_global = not m.training if m.use_global_stats is None else m.use_global_stats
    if not use_global:
        raise e.unsupported("BatchNorm with batch statistics (use_global_stats: false)")
    # Caffe divides the stored sums by blob 2 (0 -> 0): stored here already divided
    mean, var = normalization.scaled_stats(*m.blobs)
    mean_attr = e.buffer(mean, "mean")
    var_attr = e.buffer(var, "var")
    x = e.bottoms[0]
    if len(e.bottom_shapes[0]) < 2:
        x = f"{x}.reshape(-1, 1)"
    y = f"F.batch_norm({x}, {mean_attr}, {var_attr}, eps={num(m.eps)})"
    if len(e.bottom_shapes[0]) < 2:
        y = f"{y}.reshape(-1)"
    return e.assign(y)


def _spread(e: Emit, expr: str, blob_shape: Shape, axis: int) -> str:
    """``expr`` (of ``blob_shape``) viewed to broadcast from ``axis`` of the bottom."""
    ndim = len(e.bottom_shapes[0])
    trailing = ndim - axis - len(blob_shape)
    if not blob_shape or trailing <= 0:
        return expr
    return f"{expr}.view({', '.join(str(d) for d in (*blob_shape, *[1] * trailing))})"


@emitter(normalization.CaffeScale)
def _scale(e: Emit) -> list[str]:
    m = e.module
    x = e.bottoms[0]
    if m.learned_scale:
        s = _spread(e, e.param(0, "scale"), tuple(m.blobs[0].shape), m.axis)
    else:
        s = _spread(e, e.bottoms[1], tuple(e.bottom_shapes[1]), m.axis)
    y = f"{x} * {s}"
    if m.bias_term:
        b = _spread(e, e.param(len(m.blobs) - 1, "bias"), tuple(m.blobs[-1].shape), m.bias_axis)
        y = f"{y} + {b}"
    return e.assign(y)


@emitter(normalization.CaffeBias)
def _bias(e: Emit) -> list[str]:
    m = e.module
    if len(m.blobs):
        b = _spread(e, e.param(0, "bias"), tuple(m.blobs[0].shape), m.axis)
    else:
        b = _spread(e, e.bottoms[1], tuple(e.bottom_shapes[1]), m.axis)
    return e.assign(f"{e.bottoms[0]} + {b}")
