"""The layer registry: one entry per Caffe layer type.

Adding a layer type is one decorated builder plus one test file::

    @register_layer("ReLU", param="relu_param", aliases=("RELU", "relu"))
    def build_relu(ctx: BuildContext) -> nn.Module:
        return CaffeReLU(ctx.param.negative_slope)

A builder receives a :class:`BuildContext` (the layer's protobuf message, its bottom shapes,
the phase) and returns an ``nn.Module`` that follows the module contract:

* ``forward(*bottoms)`` takes the bottom tensors in prototxt order and returns one tensor
  when the layer has exactly one top, else a tuple with one tensor per top.
* Caffe's parameter blobs live in ``module.blobs`` (an ``nn.ParameterList``) in caffemodel
  order. Blobs Caffe never learns (BatchNorm's statistics) are Parameters with
  ``requires_grad=False``. Weight sharing replaces entries of this list.
* Optionally ``infer_shapes(bottom_shapes) -> list[tuple[int, ...]]`` for layers whose top
  shapes depend on bottom *values*; otherwise top shapes come from running the module on
  meta tensors.
* Train/test differences follow ``module.training`` (the net sets it from its phase).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

import torch
from torch import nn

from caffe2torch.errors import BuildError
from caffe2torch.ir.graph import LayerKind
from caffe2torch.ir.problems import raise_first
from caffe2torch.ir.settings import missing_settings
from caffe2torch.layers.typeinfo import Arity, kind_of, suggest_from, unknown_type_hint
from caffe2torch.proto.forks import fork_bottom_count
from caffe2torch.suggest import close_names, did_you_mean

Shape = tuple[int, ...]


def _arity(value: int | tuple[int, int | None] | Arity) -> Arity:
    if isinstance(value, Arity):
        return value
    if isinstance(value, int):
        return Arity(value, value)
    return Arity(value[0], value[1])


@dataclass
class BuildContext:
    """What a builder knows about the layer it builds."""

    layer: Any  # caffe_pb2.LayerParameter (upgraded to V2)
    bottom_shapes: list[Shape]
    num_tops: int
    phase: str = "TEST"  # "TRAIN" or "TEST"
    spec: LayerSpec | None = None
    options: dict[str, Any] = field(default_factory=dict)  # build options (allow_python, ...)
    # fields of this layer that our schema lacks (io.extra.ExtraField): kept unknown fields,
    # or a fork schema's own fields when the net was read with proto=
    extra: list[Any] = field(default_factory=list)
    used_extra: set[str] = field(default_factory=set)

    @property
    def name(self) -> str:
        return self.layer.name

    @property
    def type(self) -> str:
        return self.layer.type

    @property
    def param(self) -> Any:
        """The layer's ``*_param`` message named by the spec (defaults when absent)."""
        if self.spec is None or self.spec.param is None:
            raise BuildError(f"layer '{self.name}' of type {self.type} has no parameter message")
        return getattr(self.layer, self.spec.param)

    def extra_field(self, dotted: str, default: Any = None) -> Any:
        """The value of a field our schema lacks, by its path inside the layer
        (``"bn_param.bn_mode"``), or ``default`` when the file does not write it. Reading it
        tells the build that this builder understands the field (see :func:`needed_extra`)."""
        self.used_extra.add(dotted)
        for e in self.extra:
            if e.dotted == dotted:
                return e.value
        return default

    def error(self, message: str, hint: str | None = None) -> BuildError:
        """A BuildError that names this layer (the builder adds file and line)."""
        return BuildError(f"layer '{self.name}' ({self.type}): {message}", hint=hint)


Builder = Callable[[BuildContext], nn.Module]
_B = TypeVar("_B", bound=Builder)  # register_layer keeps a builder's own return type


@dataclass(frozen=True)
class LayerSpec:
    """Registry entry for one Caffe layer type."""

    type: str
    builder: Builder
    param: str | None
    bottoms: Arity
    tops: Arity
    blobs: tuple[str, ...]
    aliases: tuple[str, ...]
    loss: bool
    data: bool


_REGISTRY: dict[str, LayerSpec] = {}
_ALIASES: dict[str, str] = {}


def register_layer(
    type_name: str,
    *,
    param: str | None = None,
    bottoms: int | tuple[int, int | None] = 1,
    tops: int | tuple[int, int | None] = 1,
    blobs: Sequence[str] = (),
    aliases: Sequence[str] = (),
    loss: bool = False,
    data: bool = False,
    replace: bool = False,
) -> Callable[[_B], _B]:
    """Register ``builder`` for the Caffe type ``type_name``.

    ``param``: the LayerParameter field holding this type's options (``"convolution_param"``).
    ``bottoms``/``tops``: an exact count or ``(low, high)`` with ``high=None`` for no limit.
    ``blobs``: names of the caffemodel blobs in order (``("weight", "bias")``).
    ``aliases``: V1 enum names and V0 type strings that mean this type.
    ``loss``: Caffe's LossLayer: top 0 gets loss_weight 1 unless the prototxt says otherwise.
    ``data``: the layer's tops are fed from outside the graph (Input, Data, ImageData,
    HDF5Data, MemoryData, WindowData): they become graph inputs. DummyData and Parameter
    compute their tops and are not data layers in this sense.
    ``replace``: a plug-in's builder takes over a registered type (or alias). caffe2torch's
    own modules register each type once and never replace: a fork's options of a BVLC type
    are handled inside the BVLC builder.
    """

    def decorate(builder: _B) -> _B:
        _check_new(type_name, aliases, builder, replace)
        spec = LayerSpec(
            type=type_name,
            builder=builder,
            param=param,
            bottoms=_arity(bottoms),
            tops=_arity(tops),
            blobs=tuple(blobs),
            aliases=tuple(aliases),
            loss=loss,
            data=data,
        )
        _REGISTRY[type_name] = spec
        for alias in spec.aliases:
            _ALIASES[alias] = type_name
        return builder

    return decorate


def _check_new(type_name: str, aliases: Sequence[str], builder: Builder, replace: bool) -> None:
    """Registering a type (or an alias) twice is an error, except a plug-in's ``replace``."""
    builtin = getattr(builder, "__module__", "").startswith("caffe2torch.")
    taken = [f"layer type {type_name!r}"] if type_name in _REGISTRY else []
    taken += [
        f"alias {alias!r} (of {_ALIASES[alias]!r})"
        for alias in aliases
        if _ALIASES.get(alias, type_name) != type_name
    ]
    if not taken or (replace and not builtin):
        return
    owner = _REGISTRY[type_name].builder if type_name in _REGISTRY else None
    name = getattr(owner, "__qualname__", repr(owner))
    where = f" by {getattr(owner, '__module__', '?')}.{name}" if owner is not None else ""
    if builtin:
        raise ValueError(
            f"{', '.join(taken)} is already registered{where}: a built-in type is registered "
            f"once (handle a fork's options inside the BVLC builder)"
        )
    raise ValueError(
        f"{', '.join(taken)} is already registered{where} (replace=True takes it over)"
    )


def registered_types() -> list[str]:
    _load_builtin_layers()
    return sorted(_REGISTRY)


def find_layer_spec(type_name: str) -> LayerSpec | None:
    """The spec for a V2 type name or one of its aliases; None when unknown."""
    _load_builtin_layers()
    if type_name in _REGISTRY:
        return _REGISTRY[type_name]
    canonical = _ALIASES.get(type_name)
    return _REGISTRY.get(canonical) if canonical else None


def suggest_types(type_name: str, limit: int = 3) -> list[str]:
    """Up to ``limit`` registered names or aliases close to ``type_name`` (did you mean)."""
    _load_builtin_layers()
    return suggest_from(type_name, list(_REGISTRY), _ALIASES, limit)


def layer_kind(type_name: str) -> LayerKind:
    """What Net::Init's wiring (ir.wire_net) needs to know of a type: loss, data, whether
    it is known, its blob counts (a Python layer's are its own code's business)."""
    return kind_of(find_layer_spec(type_name), type_name, list(_REGISTRY), _ALIASES)


def get_layer_spec(type_name: str, layer_name: str = "?") -> LayerSpec:
    """The spec for ``type_name`` or a BuildError with "did you mean"."""
    spec = find_layer_spec(type_name)
    if spec is not None:
        return spec
    raise BuildError(f"layer '{layer_name}': unknown layer type \"{type_name}\"",
                     hint=_unknown_type_hint(type_name), code="C2T301")


def _unknown_type_hint(type_name: str) -> str:
    return unknown_type_hint(type_name, suggest_types(type_name))


def build_layer(ctx: BuildContext) -> nn.Module:
    """Check arity and run the registered builder for ``ctx.layer``."""
    spec = get_layer_spec(ctx.layer.type, ctx.layer.name)
    ctx.spec = spec
    n_bottom = len(ctx.bottom_shapes)
    if not spec.bottoms.accepts(n_bottom):
        why, hint = fork_bottom_count(spec.type, n_bottom) or ("", None)
        raise ctx.error(f"takes {spec.bottoms.describe()} bottom(s), got {n_bottom}{why}",
                        hint=hint)
    if not spec.tops.accepts(ctx.num_tops):
        raise ctx.error(f"takes {spec.tops.describe()} top(s), got {ctx.num_tops}")
    try:
        raise_first(missing_settings(ctx.layer))  # C2T307, the linter's rule
        module = spec.builder(ctx)
    except BuildError:
        # a kept field the builder did not read is the likelier cause (a typo of a
        # required field, a fork's mode): name it instead
        unread = needed_extra(ctx) if ctx.extra else []
        if unread:
            raise _unread_error(ctx, unread) from None
        raise
    unread = needed_extra(ctx) if ctx.extra else []
    if unread:
        raise _unread_error(ctx, unread)
    if not hasattr(module, "blobs"):
        module.blobs = nn.ParameterList()
    return module


def layer_blobs(module: nn.Module) -> nn.ParameterList:
    """``module.blobs``, the Caffe parameter blobs of a built layer module (build_layer
    gives every module one, empty for layers without parameters)."""
    return cast(nn.ParameterList, module.blobs)


def _own_block(type_name: str) -> str:
    """``DenseImageData`` -> ``dense_image_data_param`` (how Caffe names a type's options)."""
    snake = re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", type_name).lower()
    return f"{snake}_param"


def needed_extra(ctx: BuildContext) -> list[Any]:
    """The kept fields of ``ctx.layer`` whose meaning the built layer depends on and that its
    builder did not read: those in the type's own parameter block, in ``param { }``, in
    ``transform_param`` of a data layer and in ``loss_param`` of a loss layer. A block that
    belongs to another type is ignored, as Caffe ignores it."""
    spec = ctx.spec
    own = {_own_block(ctx.layer.type), "param"}
    if spec is not None:
        own |= {spec.param} if spec.param else set()
        own |= {"transform_param"} if spec.data else set()
        own |= {"loss_param"} if spec.loss else set()
    out = []
    for e in ctx.extra:
        dotted = e.dotted
        if dotted.split(".")[0] not in own:
            continue
        if any(dotted == u or dotted.startswith(u + ".") for u in ctx.used_extra):
            continue
        out.append(e)
    return out


def _close_fields(owner: str, name: str) -> list[str]:
    """Fields of our ``owner`` message spelled like ``name`` (a typo rather than a fork)."""
    from caffe2torch.proto import caffe_pb2

    desc = caffe_pb2.DESCRIPTOR.message_types_by_name.get(owner)
    if desc is None:
        return []
    return close_names(name, desc.fields_by_name, cutoff=0.8)


def _unread_error(ctx: BuildContext, unread: list[Any]) -> BuildError:
    from caffe2torch.proto.forks import fork_of_foreign

    e = unread[0]
    fork = fork_of_foreign(e.owner, e.name)
    origin = f" (it comes from {fork})" if fork else ""
    if e.typed:
        hint = (f"a builder for {ctx.layer.type} that understands it can read it with "
                f'ctx.extra_field("{e.dotted}") (caffe2torch.register_layer(..., replace=True))')
    else:
        hint = ("read the net with the fork's own caffe.proto (--proto PATH, proto=PATH) and "
                f'build {ctx.layer.type} with a plug-in that reads ctx.extra_field("{e.dotted}"),'
                " or delete the field if the net works without it")
    close = did_you_mean(_close_fields(e.owner, e.name) if e.kind == "field" else [])
    if close:
        hint = f"{close} Else {hint}"
    more = f" and {len(unread) - 1} more are" if len(unread) > 1 else " is"
    what = "value" if e.kind == "enum" else "field"
    return BuildError(
        f"layer '{ctx.layer.name}' ({ctx.layer.type}): the {what} `{e.text}`{more} not in "
        f"caffe2torch's schema{origin}, and building this layer needs its meaning",
        line=e.line, col=e.col, hint=hint, code="C2T605",
    )


def infer_top_shapes(module: nn.Module, bottom_shapes: Sequence[Shape]) -> list[Shape]:
    """Top shapes of ``module`` for bottoms of ``bottom_shapes``, without computing anything:
    the module's own ``infer_shapes`` when it has one, else a forward on meta tensors."""
    custom = getattr(module, "infer_shapes", None)
    if custom is not None:
        return [tuple(int(d) for d in s) for s in custom(list(bottom_shapes))]
    state = {
        name: torch.empty_like(t, device="meta")
        for name, t in [*module.named_parameters(), *module.named_buffers()]
    }
    inputs = tuple(torch.empty(s, device="meta") for s in bottom_shapes)
    with torch.no_grad():
        out = torch.func.functional_call(module, state, inputs)
    outs = out if isinstance(out, tuple) else (out,)
    return [tuple(int(d) for d in t.shape) for t in outs]


_loaded = False


def _load_builtin_layers() -> None:
    """Import the modules that register Caffe's layer types (once)."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    import caffe2torch.layers.catalog  # noqa: F401  (registers every built-in type)
    from caffe2torch.layers.plugins import load_entry_points

    load_entry_points()  # plug-ins of the "caffe2torch.layers" entry-point group
