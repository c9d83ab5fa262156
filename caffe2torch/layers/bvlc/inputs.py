"""Layers that start a net: Input and the data layers (tops fed from outside), DummyData and
Parameter (tops computed here), HDF5Output (a sink) and Python (user code, opt-in).

Data layers (``data=True``: Input, Data, ImageData, HDF5Data, MemoryData, WindowData) do not
read anything here: caffe2torch.data produces their batches and the net feeds them in as
graph inputs. Their modules only tell the top shapes Caffe would set up (``infer_shapes``)
and pass fed tensors through. A shape that Caffe takes from the data itself (a Data layer's
channels, an HDF5 dataset's dims, an un-resized image) can be given by the build option
``input_shapes`` ({top name: shape}, the CLI's --input-shape); without it the build stops
with a BuildError that says so.
"""

from __future__ import annotations

import importlib
import logging
import sys
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from caffe2torch.errors import BuildError, mark_user_code_error
from caffe2torch.ir.shapes import image_data_shapes, known, memory_data_shapes
from caffe2torch.layers.emit import Emit, emitter, num
from caffe2torch.layers.fillers import FILLER_TYPES, fill
from caffe2torch.layers.registry import BuildContext, Shape, register_layer
from caffe2torch.limits import check_blob

logger = logging.getLogger(__name__)

# --- data layers: tops fed from outside ---------------------------------------------------


class DataInput(nn.Module):
    """A data layer's module: knows the tops' shapes, passes fed tensors through."""

    def __init__(
        self, layer_type: str, layer_name: str, shapes: list[Shape] | None, why: str,
        tops: Sequence[str] = (),
    ) -> None:
        super().__init__()
        self.layer_type = layer_type
        self.layer_name = layer_name
        self.shapes = shapes
        self.why = why  # why the shapes are unknown (when they are)
        self.tops = list(tops)

    def infer_shapes(self, bottom_shapes: list[Shape]) -> list[Shape]:
        if self.shapes is None:
            need = ", ".join(f"--input-shape {t}=N,C,H,W" for t in self.tops)
            raise BuildError(
                f"layer '{self.layer_name}' ({self.layer_type}): the top shapes cannot be "
                f"computed from the prototxt: {self.why}; top(s) still without a shape: "
                f"{', '.join(self.tops) or '?'}",
                hint="build with the data source reachable, or give the shapes"
                + (f" ({need})" if need else " with --input-shape")
                + " (build option input_shapes={top: shape})",
            )
        return list(self.shapes)

    def forward(self, *fed: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
        return fed[0] if len(fed) == 1 else tuple(fed)

    def extra_repr(self) -> str:
        return f"type={self.layer_type}, shapes={self.shapes}"


def _given_shapes(ctx: BuildContext) -> list[Shape] | None:
    """Shapes for every top from the ``input_shapes`` build option, when all are given."""
    given = ctx.options.get("input_shapes") or {}
    tops = list(ctx.layer.top)
    if tops and all(t in given for t in tops):
        return [tuple(int(d) for d in given[t]) for t in tops]
    return None


def _data_module(ctx: BuildContext, shapes: list[Shape] | None, why: str = "") -> DataInput:
    override = _given_shapes(ctx)
    if override is not None:
        shapes = override
    elif shapes is not None:
        shapes = shapes[: ctx.num_tops]
    return DataInput(ctx.type, ctx.name, shapes, why, list(ctx.layer.top))


def _check_batch(ctx: BuildContext, batch_size: int) -> None:
    if batch_size <= 0:
        raise ctx.error(f"batch_size must be positive, got {batch_size}")


@register_layer("Input", param="input_param", bottoms=0, tops=(1, None), data=True)
def build_input(ctx: BuildContext) -> nn.Module:
    shapes = [tuple(int(d) for d in s.dim) for s in ctx.param.shape]
    n = ctx.num_tops
    if len(shapes) == 1:
        shapes = shapes * n
    elif shapes and len(shapes) != n:
        raise ctx.error(
            f"{len(shapes)} input_param shapes for {n} tops: give one shape for all or one per top"
        )
    if not shapes:
        return _data_module(ctx, None, "input_param has no shape")
    return _data_module(ctx, shapes)


def _crop_size(ctx: BuildContext) -> int:
    return int(ctx.layer.transform_param.crop_size) if ctx.layer.HasField("transform_param") else 0


def _crop_hw(ctx: BuildContext) -> tuple[int, int]:
    """The (height, width) crop of the layer's transform: crop_size, or a fork's
    rectangular crop (Cysu/caffe's crop_height / crop_width, kept aside or typed by
    --proto; SSD's crop_h / crop_w), which the data sources apply (data.crop)."""
    from caffe2torch.data.crop import RECT_FIELDS, crop_hw
    from caffe2torch.errors import DataError

    kept = {name: v for name in RECT_FIELDS if (v := ctx.extra_field(name)) is not None}
    try:
        return crop_hw(ctx.layer.transform_param, kept)
    except DataError as e:
        raise ctx.error(e.message.removeprefix(": "), hint=e.hint) from None


@register_layer(
    "Data", param="data_param", bottoms=0, tops=(1, 2), data=True, aliases=("DATA", "data")
)
def build_data(ctx: BuildContext) -> nn.Module:
    p = ctx.param
    _check_batch(ctx, p.batch_size)
    # data_param.shuffle, a fork's field (intel/caffe, lim0606/caffe for GoogLeNet-BN): the
    # records in a new random order every epoch; the data source reads it (DatumSource)
    shuffle = ctx.extra_field("data_param.shuffle", False)
    if not isinstance(shuffle, (bool, int)) or shuffle not in (0, 1):
        raise ctx.error(f"data_param.shuffle must be true or false, got {shuffle!r}")
    _crop_hw(ctx)  # checked here; the records give the size
    return _data_module(
        ctx, None, f"a Data layer takes its channels and size from the records of {p.source!r}"
    )


@register_layer(
    "ImageData",
    param="image_data_param",
    bottoms=0,
    tops=(1, 2),
    data=True,
    aliases=("IMAGE_DATA", "images"),
)
def build_image_data(ctx: BuildContext) -> nn.Module:
    p = ctx.param
    _check_batch(ctx, p.batch_size)
    if (p.new_height > 0) != (p.new_width > 0):
        raise ctx.error("new_height and new_width must be set together (or neither)")
    crop = _crop_hw(ctx)
    shapes = image_data_shapes(p, crop)
    if None in shapes[0]:
        shapes = image_data_shapes(p, crop, _first_image_size(p))  # DataLayerSetUp reads it
    if None in shapes[0]:
        return _data_module(
            ctx,
            None,
            f"without new_height/new_width or crop_size the image size comes from "
            f"the first image listed in {p.source!r}, which cannot be read here",
        )
    return _data_module(ctx, [known(s) for s in shapes])


def _first_image_size(p: Any, first_token: bool = False) -> tuple[int, int] | None:
    """(height, width) of the first image of the list ``p.source`` (root_folder + name,
    relative to the working directory, as Caffe opens it), or None when it cannot be read.
    Caffe shuffles the list before reading it when ``shuffle`` is set; nets that need a
    fixed size resize (new_height/new_width), so the first listed image stands in."""
    from caffe2torch.data.images import read_image

    try:
        with open(p.source, "rb") as f:
            first = f.readline().decode("utf-8", "surrogateescape").rstrip("\r\n")
    except OSError:
        return None
    if first_token:  # DenseImageData: `infile >> filename >> labelname`
        name = first.split()[0] if first.split() else ""
    else:  # ImageData: the name ends at the last space
        name = first[: first.rfind(" ")] if " " in first else first
    img = read_image(p.root_folder + name, is_color=p.is_color) if name else None
    return (int(img.shape[0]), int(img.shape[1])) if img is not None else None


@register_layer(
    "HDF5Data",
    param="hdf5_data_param",
    bottoms=0,
    tops=(1, None),
    data=True,
    aliases=("HDF5_DATA", "hdf5_data"),
)
def build_hdf5_data(ctx: BuildContext) -> nn.Module:
    p = ctx.param
    _check_batch(ctx, p.batch_size)
    return _data_module(
        ctx,
        None,
        f"HDF5Data takes its shapes from the datasets in the files listed in {p.source!r}",
    )


@register_layer(
    "MemoryData", param="memory_data_param", bottoms=0, tops=2, data=True, aliases=("MEMORY_DATA",)
)
def build_memory_data(ctx: BuildContext) -> nn.Module:
    p = ctx.param
    dims = (p.batch_size, p.channels, p.height, p.width)
    if min(dims) <= 0:
        raise ctx.error(f"batch_size, channels, height and width must all be positive, got {dims}")
    module = _data_module(ctx, [known(s) for s in memory_data_shapes(p)])
    return MemoryDataInput(module.layer_type, module.layer_name, module.shapes, module.why,
                           module.tops)


class MemoryDataInput(DataInput):
    """MemoryData: the label is fed as a vector (pycaffe's set_input_arrays) and comes out
    as (batch, 1, 1, 1), as Caffe's Forward reshapes it."""

    def forward(self, *fed: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
        if len(fed) == 2:
            return fed[0], fed[1].reshape(fed[1].shape[0], 1, 1, 1)
        return super().forward(*fed)


@register_layer(
    "WindowData",
    param="window_data_param",
    bottoms=0,
    tops=2,
    data=True,
    aliases=("WINDOW_DATA", "window_data"),
)
def build_window_data(ctx: BuildContext) -> nn.Module:
    p = ctx.param
    _check_batch(ctx, p.batch_size)
    crop = _crop_size(ctx) or int(p.crop_size)
    if crop <= 0:
        raise ctx.error("WindowData needs transform_param.crop_size > 0")
    return _data_module(
        ctx, None, f"WindowData takes its channels from the window file {p.source!r}"
    )


# --- DummyData / Parameter ----------------------------------------------------------------


class CaffeDummyData(nn.Module):
    """Tops filled by Caffe fillers: constant fillers once, the others at every forward."""

    _anchor: torch.Tensor

    def __init__(self, shapes: list[Shape], fillers: list[Any]) -> None:
        super().__init__()
        self.shapes = shapes
        self.fillers = fillers
        # follows .to(device) so the tops are made where the net lives
        self.register_buffer("_anchor", torch.zeros(()), persistent=False)

    def forward(self) -> torch.Tensor | tuple[torch.Tensor, ...]:
        device = self._anchor.device
        tops = tuple(fill(f, s, device=device) for f, s in zip(self.fillers, self.shapes))
        return tops[0] if len(tops) == 1 else tops

    def extra_repr(self) -> str:
        return f"shapes={self.shapes}, fillers={[f.type for f in self.fillers]}"


def _per_top(ctx: BuildContext, name: str, values: Sequence[Any], n: int) -> list[Any]:
    if len(values) == 1:
        return list(values) * n
    if len(values) != n:
        raise ctx.error(f"give '{name}' once or once per top ({n}); got {len(values)}")
    return list(values)


@register_layer(
    "DummyData", param="dummy_data_param", bottoms=0, tops=(1, None), aliases=("DUMMY_DATA",)
)
def build_dummy_data(ctx: BuildContext) -> nn.Module:
    from caffe2torch.proto import caffe_pb2

    p = ctx.param
    n = ctx.num_tops
    if len(p.data_filler) == 0:
        fillers = [caffe_pb2.FillerParameter(type="constant", value=0.0)] * n
    else:
        fillers = _per_top(ctx, "data_filler", p.data_filler, n)
    legacy = p.num or p.channels or p.height or p.width
    if legacy:
        if p.shape:
            raise ctx.error("give either shape or the legacy num/channels/height/width, not both")
        cols = [_per_top(ctx, f, getattr(p, f), n) for f in ("num", "channels", "height", "width")]
        shapes = [tuple(int(c[i]) for c in cols) for i in range(n)]
    else:
        if not p.shape:
            raise ctx.error("dummy_data_param needs a shape (or num/channels/height/width)")
        shapes = [tuple(int(d) for d in s.dim) for s in _per_top(ctx, "shape", p.shape, n)]
    for f in fillers:
        if f.type not in FILLER_TYPES:
            raise ctx.error(f'unknown filler type "{f.type}"')
    return CaffeDummyData(shapes, fillers)


class CaffeParameter(nn.Module):
    """One learnable blob, given as the top (its gradient is the blob's)."""

    def __init__(self, shape: Shape) -> None:
        super().__init__()
        self.blobs = nn.ParameterList([nn.Parameter(torch.zeros(shape))])

    def forward(self) -> torch.Tensor:
        return self.blobs[0]


@register_layer("Parameter", param="parameter_param", bottoms=0, tops=1, blobs=("value",))
def build_parameter(ctx: BuildContext) -> nn.Module:
    shape = tuple(int(d) for d in ctx.param.shape.dim)
    check_blob(shape)
    return CaffeParameter(shape)


# --- HDF5Output ---------------------------------------------------------------------------


class CaffeHDF5Output(nn.Module):
    """Caffe writes its two bottoms (data, label) to ``file_name`` at every forward. Here the
    forward computes nothing and writes nothing: the training/test runner, which knows when
    a batch is final, writes the file. ``file_name`` is kept for it."""

    def __init__(self, file_name: str) -> None:
        super().__init__()
        self.file_name = file_name

    def forward(self, data: torch.Tensor, label: torch.Tensor) -> tuple[()]:
        return ()

    def extra_repr(self) -> str:
        return f"file_name={self.file_name!r}"


@register_layer(
    "HDF5Output",
    param="hdf5_output_param",
    bottoms=2,
    tops=0,
    aliases=("HDF5_OUTPUT", "hdf5_output"),
)
def build_hdf5_output(ctx: BuildContext) -> nn.Module:
    return CaffeHDF5Output(ctx.param.file_name)


# --- Python -------------------------------------------------------------------------------


class LegacyAxes:
    """Caffe's Blob::num/channels/height/width over the class's ``shape``
    (Blob::LegacyShape): an axis past the end counts 1; more than 4 axes is an error, as
    Caffe's CHECK_LE(num_axes(), 4)."""

    __slots__ = ()

    @property
    def shape(self) -> tuple[int, ...]:
        raise NotImplementedError

    def _legacy(self, axis: int) -> int:
        shape = self.shape
        if len(shape) > 4:
            raise ValueError(f"cannot use legacy accessors on a blob of {len(shape)} axes")
        return int(shape[axis]) if axis < len(shape) else 1

    @property
    def num(self) -> int:
        return self._legacy(0)

    @property
    def channels(self) -> int:
        return self._legacy(1)

    @property
    def height(self) -> int:
        return self._legacy(2)

    @property
    def width(self) -> int:
        return self._legacy(3)


class PyBlob(LegacyAxes):
    """The part of pycaffe's Blob a Python layer uses: ``data``/``diff`` numpy arrays,
    ``reshape(*shape)``, ``shape``, ``count`` and the legacy num/channels/height/width."""

    def __init__(self, data: np.ndarray | None = None, shape: Sequence[int] = ()) -> None:
        self.data = (
            np.ascontiguousarray(data, dtype=np.float32)
            if data is not None
            else np.zeros(tuple(shape), dtype=np.float32)
        )
        self.diff = np.zeros_like(self.data)

    def reshape(self, *shape: int) -> None:
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        shape = tuple(int(d) for d in shape)
        if shape != self.data.shape:
            self.data = np.zeros(shape, dtype=np.float32)
            self.diff = np.zeros(shape, dtype=np.float32)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.data.shape)

    @property
    def count(self) -> int:
        return int(self.data.size)



class Phase(int):
    """A Python layer's ``self.phase``: 0 (TRAIN) or 1 (TEST), equal to ``caffe.TRAIN`` /
    ``caffe.TEST``, whose ``str`` is the name, as the Boost.Python enum ``caffe._caffe.Phase``
    that caffe-fast-rcnn gives its layers (py-faster-rcnn's proposal layer looks its
    settings up by ``cfg[str(self.phase)]``)."""

    TRAIN: Phase
    TEST: Phase

    def __str__(self) -> str:
        return "TRAIN" if self == 0 else "TEST"

    def __repr__(self) -> str:
        return f"caffe._caffe.Phase.{self}"


Phase.TRAIN, Phase.TEST = Phase(0), Phase(1)


def layer_phase(training: bool) -> Phase:
    return Phase.TRAIN if training else Phase.TEST


def _ensure_caffe_module() -> None:
    """Python layers subclass ``caffe.Layer`` and may use the rest of pycaffe (``caffe.io``,
    ``caffe._caffe.RawBlobVec``, ``caffe.TRAIN``): when no real pycaffe is importable,
    ``import caffe`` gives caffe2torch's own (caffe2torch.pycaffe.alias)."""
    if "caffe" in sys.modules:
        return
    try:
        importlib.import_module("caffe")
        return
    except ImportError:
        pass
    from caffe2torch.pycaffe import alias

    alias.install()


def defines_backward(layer: Any) -> bool:
    """True when the user's class (not ``caffe.Layer``) defines backward."""
    owner = next((c for c in type(layer).__mro__ if "backward" in c.__dict__), None)
    if owner is None:
        return False
    base = getattr(sys.modules.get("caffe"), "Layer", None)
    return owner is not base and owner.__module__.split(".")[0] != "caffe"


_NOTED: set[type] = set()


def _note_forward_only(layer: Any, name: str) -> None:
    cls = type(layer)
    if cls in _NOTED:
        return
    _NOTED.add(cls)
    logger.info(
        "Python layer '%s' (%s.%s) defines no backward: it runs forward only and its tops "
        "carry no gradient", name, cls.__module__, cls.__qualname__,
    )


def _to_tensors(blobs: Sequence[PyBlob], device: torch.device) -> tuple[torch.Tensor, ...]:
    return tuple(
        torch.from_numpy(np.array(b.data, dtype=np.float32)).to(device) for b in blobs
    )


class _PythonLayerFunction(torch.autograd.Function):
    """forward/backward of a pycaffe layer: tops from ``layer.forward``; the bottoms'
    gradients from ``layer.backward(top, propagate_down, bottom)`` with the tops' ``diff``
    set to the incoming gradients (pycaffe's conventions)."""

    @staticmethod
    def forward(
        ctx: Any, module: CaffePythonLayer, *bottoms: torch.Tensor
    ) -> tuple[torch.Tensor, ...]:
        blobs = [PyBlob(b.detach().cpu().numpy()) for b in bottoms]
        tops = module.run_forward(blobs)
        ctx.module, ctx.bottoms = module, blobs
        ctx.tops = [PyBlob(np.array(t.data, dtype=np.float32)) for t in tops]
        ctx.device = bottoms[0].device if bottoms else torch.device("cpu")
        return _to_tensors(tops, ctx.device)

    @staticmethod
    def backward(ctx: Any, *grads: torch.Tensor | None) -> tuple[torch.Tensor | None, ...]:
        for top, grad in zip(ctx.tops, grads):
            top.diff = (
                np.zeros_like(top.data) if grad is None
                else np.ascontiguousarray(grad.detach().cpu().numpy(), dtype=np.float32)
            )
        for bottom in ctx.bottoms:
            bottom.diff = np.zeros_like(bottom.data)
        propagate = [bool(n) for n in ctx.needs_input_grad[1:]]
        ctx.module.layer.backward(ctx.tops, propagate, ctx.bottoms)
        out = [
            torch.from_numpy(np.array(b.diff, dtype=np.float32).reshape(b.data.shape)).to(
                ctx.device) if wanted else None
            for b, wanted in zip(ctx.bottoms, propagate)
        ]
        return (None, *out)


class CaffePythonLayer(nn.Module):
    """Runs a pycaffe Python layer: setup once, then reshape + forward on numpy blobs at
    every call, pycaffe's order. When the layer's class defines backward, the tops are
    differentiable through it; otherwise they carry no gradient."""

    def __init__(
        self, layer: Any, num_tops: int, bottom_shapes: list[Shape], name: str = "?"
    ) -> None:
        super().__init__()
        self.layer = layer
        self.num_tops = num_tops
        bottoms = [PyBlob(shape=s) for s in bottom_shapes]
        self.top_blobs = [PyBlob() for _ in range(num_tops)]
        layer.setup(bottoms, self.top_blobs)
        params = getattr(getattr(layer, "blobs", None), "params", None)
        if isinstance(params, nn.ParameterList):  # caffe.Layer's blobs.add_blob: net params
            self.blobs = params
        layer.reshape(bottoms, self.top_blobs)
        self.setup_shapes = [b.shape for b in self.top_blobs]
        self.differentiable = defines_backward(layer)
        if not self.differentiable:
            _note_forward_only(layer, name)

    def infer_shapes(self, bottom_shapes: list[Shape]) -> list[Shape]:
        bottoms = [PyBlob(shape=s) for s in bottom_shapes]
        self.layer.reshape(bottoms, self.top_blobs)
        return [b.shape for b in self.top_blobs]

    def run_forward(self, blobs: list[PyBlob]) -> list[PyBlob]:
        self.layer.phase = layer_phase(self.training)
        self.layer.reshape(blobs, self.top_blobs)
        self.layer.forward(blobs, self.top_blobs)
        return self.top_blobs

    def forward(self, *bottoms: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
        if self.differentiable and torch.is_grad_enabled() and any(
            b.requires_grad for b in bottoms
        ):
            tops = _PythonLayerFunction.apply(self, *bottoms)
        else:
            device = bottoms[0].device if bottoms else torch.device("cpu")
            blobs = [PyBlob(b.detach().cpu().numpy()) for b in bottoms]
            tops = _to_tensors(self.run_forward(blobs), device)
        if not tops:
            return ()
        return tops[0] if len(tops) == 1 else tuple(tops)

    def extra_repr(self) -> str:
        cls = type(self.layer)
        return f"{cls.__module__}.{cls.__qualname__}, differentiable={self.differentiable}"


@register_layer("Python", param="python_param", bottoms=(0, None), tops=(0, None))
def build_python(ctx: BuildContext) -> nn.Module:
    p = ctx.param
    where = f"module {p.module!r}, class {p.layer!r}"
    if not ctx.options.get("allow_python_layers"):
        raise ctx.error(
            f"Python layers are refused by default: building it would import and run "
            f"arbitrary code from {where}",
            hint="if you trust that code, allow it with --allow-python-layers "
            "(build option allow_python_layers=True) and put its module on PYTHONPATH",
        )
    if not p.module or not p.layer:
        raise ctx.error("python_param needs both module and layer")
    _ensure_caffe_module()
    try:
        module = importlib.import_module(p.module)
    except Exception as exc:  # the user's module may fail in any way on import
        raise ctx.error(
            f"cannot import {p.module!r}: {type(exc).__name__}: {exc}",
            hint="put the module's folder on PYTHONPATH (pycaffe imports it the same way)",
        ) from None
    cls = getattr(module, p.layer, None)
    if cls is None:
        raise ctx.error(f"module {p.module!r} has no class {p.layer!r}")
    try:
        layer = cls()
    except TypeError:
        layer = cls.__new__(cls)  # pycaffe passes the LayerParameter to the C++ base only
    layer.param_str = p.param_str
    # caffe-fast-rcnn's python_layer.hpp (BVLC Caffe of 2015) names it param_str_;
    # layers written for it (py-faster-rcnn, R-FCN) read that name
    layer.param_str_ = p.param_str
    layer.phase = layer_phase(ctx.phase == "TRAIN")
    if not hasattr(layer, "blobs"):
        layer.blobs = []
    try:
        return CaffePythonLayer(layer, ctx.num_tops, list(ctx.bottom_shapes), ctx.name)
    except Exception as exc:  # the user's setup/reshape failed: its own exception, as pycaffe
        raise mark_user_code_error(
            exc, f"in Python layer '{ctx.name}' ({where}), during setup") from None


# ----------------------------------------------------------------------------- standalone source
# convert's emitters for the module classes above (caffe2torch.layers.emit)


@emitter(CaffeDummyData)
def _emit_dummy_data(e: Emit) -> list[str]:
    """Constant fillers give the same tops at every forward; gaussian and uniform fillers
    draw new values each time, as Caffe's DummyData does."""
    lines = []
    for top, shape, filler in zip(e.tops, e.module.shapes, e.module.fillers):
        dims = ", ".join(map(str, shape))
        if filler.type == "constant":
            lines.append(f"{top} = torch.full(({dims},), {num(filler.value)})")
        elif filler.type == "uniform":
            lo, hi = num(filler.min), num(filler.max)
            lines.append(f"{top} = torch.empty({dims}).uniform_({lo}, {hi})")
        elif filler.type == "gaussian" and int(filler.sparse) < 0:
            lines.append(f"{top} = torch.empty({dims}).normal_({num(filler.mean)}, "
                         f"{num(filler.std)})")
        else:
            raise e.unsupported(f"a DummyData top with the {filler.type} filler")
    return lines


@emitter(CaffeParameter)
def _emit_parameter(e: Emit) -> list[str]:
    return e.assign(e.param(0, "value"))
