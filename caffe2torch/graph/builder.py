"""NetParameter + NetState -> CaffeNet.

Steps (each a Caffe rule implemented once elsewhere): filter and wire the net (ir.build_ir),
build every layer's module from the registry with its bottom shapes and infer its top
shapes (errors name the layer, its type, its bottom shapes and, with a SourceMap, its
line), resolve param sharing (ir.plan_sharing + ir.resolve_params: declared shares become
one nn.Parameter), take the params of layers already in ``share_with`` (Caffe's
ShareTrainedLayersWith between the train and test nets), and assemble the fx graph.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, cast

import torch
from torch import nn
from torch.nn.utils import parametrize

from caffe2torch.errors import BuildError, CaffeError, is_user_code_error
from caffe2torch.graph.names import NameTable
from caffe2torch.graph.net import CaffeLayers, CaffeNet
from caffe2torch.ir.graph import BlobRef, LayerIR, NetIR, build_ir
from caffe2torch.ir.loose import declare_read_blobs
from caffe2torch.ir.netstate import NetState
from caffe2torch.ir.params import ParamTable, resolve_params
from caffe2torch.ir.sharing import ShareOption, plan_sharing
from caffe2torch.layers.registry import (
    BuildContext,
    build_layer,
    find_layer_spec,
    infer_top_shapes,
    layer_blobs,
    layer_kind,
)
from caffe2torch.limits import blob_limit, check_layer_count

Shape = tuple[int, ...]


registry_kind = layer_kind  # what ir's wiring knows of a type, from the layer registry


def _state(state: NetState | str | int) -> NetState:
    return state if isinstance(state, NetState) else NetState.of(state)


def _located(err: CaffeError, layer: LayerIR, source_map: Any) -> CaffeError:
    """``err`` with the layer's file position when it has none."""
    if source_map is not None and err.line is not None and err.path is None:
        err.path = getattr(source_map, "path", None)  # e.g. a kept field's own line
    if source_map is not None and err.line is None:
        try:
            pos = source_map.layer(layer.index)
        except (IndexError, AttributeError):
            return err
        err.path = err.path or getattr(source_map, "path", None)
        err.line, err.col = pos.start_line, pos.start_col
    return err


def inputs_for_data_layers(net_param: Any, shapes: Mapping[str, Shape]) -> Any:
    """``net_param`` with every source layer (no bottoms) whose tops all have a shape in
    ``shapes`` and that no registered data layer builds (a Python data layer, a fork's
    data layer such as DenseImageData) replaced by an Input layer of those shapes, keeping
    its name, tops and include/exclude rules; a copy when anything changes. A registered
    data layer with a top count its builder refuses (DeepLab v1's 3-top MemoryData) is
    replaced too."""
    swap = []
    for i, layer in enumerate(net_param.layer):
        if layer.bottom or not layer.top or not all(t in shapes for t in layer.top):
            continue
        spec = find_layer_spec(layer.type)
        if (spec is not None and spec.type != "Python"
                and spec.tops.accepts(len(layer.top))):
            continue  # registered types read input_shapes themselves (or compute tops)
        swap.append(i)
    if not swap:
        return net_param
    out = type(net_param)()
    out.CopyFrom(net_param)
    for i in swap:
        old = net_param.layer[i]
        new = out.layer[i]
        new.Clear()
        new.name, new.type = old.name, "Input"
        new.top.extend(old.top)
        new.include.extend(old.include)
        new.exclude.extend(old.exclude)
        if old.HasField("phase"):
            new.phase = old.phase
        for t in old.top:
            new.input_param.shape.add().dim.extend(shapes[t])
    return out


def _extras_of(source_map: Any, index: int) -> list[Any]:
    extras_of = getattr(source_map, "extras_of", None)
    if extras_of is None or not getattr(source_map, "extras", None):
        return []
    try:
        return extras_of(index)
    except IndexError:
        return []


def _build_module(
    layer: LayerIR, bottom_shapes: list[Shape], phase: str, options: dict[str, Any],
    source_map: Any,
) -> tuple[nn.Module, list[Shape]]:
    ctx = BuildContext(
        layer=layer.proto,
        bottom_shapes=bottom_shapes,
        num_tops=len(layer.tops),
        phase=phase,
        options=options,
        extra=_extras_of(source_map, layer.index),
    )
    shapes_text = ", ".join("x".join(map(str, s)) or "scalar" for s in bottom_shapes) or "none"
    try:
        module = build_layer(ctx)
        module.train(phase == "TRAIN")
        top_shapes = infer_top_shapes(module, bottom_shapes)
    except CaffeError as err:
        if f"'{layer.name}'" not in err.message:  # e.g. a filler's or a limit's error
            err.message = f"layer '{layer.name}' ({layer.type}): {err.message}"
            err.args = (err.message,)
        raise _located(err, layer, source_map) from None
    except Exception as exc:  # a builder or a meta forward failing on these shapes
        if is_user_code_error(exc):  # a Python layer's own exception keeps its type
            raise
        failed = BuildError(
            f"layer '{layer.name}' ({layer.type}) in the {phase} phase: "
            f"{type(exc).__name__}: {exc} (bottom shapes: {shapes_text})",
            hint="check the layer's parameters against the shapes of its bottoms",
        )
        raise _located(failed, layer, source_map) from exc
    if len(top_shapes) != len(layer.tops):
        failed = BuildError(
            f"layer '{layer.name}' ({layer.type}): computes {len(top_shapes)} top(s), the "
            f"prototxt names {len(layer.tops)}"
        )
        raise _located(failed, layer, source_map)
    return module, top_shapes


def _tie_blob(module: nn.Module, index: int, owner: nn.Parameter) -> None:
    """Make blob ``index`` of ``module`` the owner's Parameter (a reshaped view of it when
    PERMISSIVE sharing joins blobs of equal count but other shapes)."""
    blobs = layer_blobs(module)
    current = blobs[index]
    if tuple(current.shape) == tuple(owner.shape):
        blobs[index] = owner
        return
    parametrize.register_parametrization(
        blobs, str(index), _Reshape(tuple(current.shape)), unsafe=True
    )
    cast(nn.ModuleDict, blobs.parametrizations)[str(index)].original = owner


class _Reshape(nn.Module):
    """A shared blob seen in this layer's own shape (Caffe's ShareData across shapes)."""

    def __init__(self, shape: Shape) -> None:
        super().__init__()
        self.shape = shape

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(self.shape)


def _share_trained(
    ir: NetIR, modules: Sequence[nn.Module], other: CaffeNet
) -> None:
    """Net::ShareTrainedLayersWith: a layer whose name exists in ``other`` uses its blobs
    (equal count and shapes required)."""
    for layer, module in zip(ir.layers, modules):
        if layer.name not in other.layer_attrs:
            continue
        source = other.module(layer.name)
        if len(layer_blobs(source)) != len(layer_blobs(module)):
            raise BuildError(
                f"layer '{layer.name}': incompatible number of blobs with the "
                f"{other.phase} net's layer of that name ({len(layer_blobs(module))} here, "
                f"{len(layer_blobs(source))} there)"
            )
        for j, (mine, theirs) in enumerate(zip(layer_blobs(module), layer_blobs(source))):
            if tuple(mine.shape) != tuple(theirs.shape):
                raise BuildError(
                    f"layer '{layer.name}': cannot share param {j} with the {other.phase} "
                    f"net: shape {tuple(mine.shape)} here, {tuple(theirs.shape)} there"
                )
            layer_blobs(module)[j] = theirs


def share_trained_layers(net: CaffeNet, other: CaffeNet) -> None:
    """Net::ShareTrainedLayersWith on a built net: every layer whose name ``other`` has
    takes its param blobs (pycaffe's ``net.share_with(other)``)."""
    _share_trained(net.ir, net._modules_in_order, other)


def _apply_table(table: ParamTable, modules: Sequence[nn.Module]) -> None:
    for (pos, i), (opos, oi) in table.shared():
        _tie_blob(modules[pos], i, layer_blobs(modules[opos])[oi])
    for entry in table.learnable:
        if entry.lr_mult == 0:  # Caffe computes no diff for lr_mult 0 blobs
            layer_blobs(modules[entry.position])[entry.index].requires_grad_(False)


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector: a build allocates tens of thousands of
    long-lived objects (modules, parameters, fx nodes), and every allocation threshold
    crossed would rescan all of them, making a build quadratic in the number of layers."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def build_net(
    net_param: Any,
    state: NetState | str | int = "TEST",
    *,
    share_with: CaffeNet | None = None,
    input_shapes: Mapping[str, Sequence[int]] | None = None,
    options: Mapping[str, Any] | None = None,
    share: ShareOption = "declared",
    source_map: Any = None,
) -> CaffeNet:
    """Build ``net_param`` (an upgraded NetParameter) for ``state`` ("TRAIN"/"TEST" or a
    NetState with level and stages).

    ``share_with``: a net built from the same file for another phase; layers of the same
    name use its params (the solver's train/test nets). ``input_shapes``: {top: shape} for
    data tops whose shape the prototxt does not say (or to change a batch size).
    ``options``: build options handed to the layer builders (``allow_python_layers``...).
    ``share``: "declared" (Caffe), "auto", None or {layer: owner} (see ir.sharing).
    """
    with gc_paused():
        return _build_net(net_param, state, share_with, input_shapes, options, share,
                          source_map)


def _build_net(
    net_param: Any,
    state: NetState | str | int,
    share_with: CaffeNet | None,
    input_shapes: Mapping[str, Sequence[int]] | None,
    options: Mapping[str, Any] | None,
    share: ShareOption,
    source_map: Any,
) -> CaffeNet:
    state = _state(state)
    opts: dict[str, Any] = dict(options or {})
    limit = opts.pop("max_blob_bytes", None)
    if limit is not None:
        with blob_limit(limit):
            return _build_net(net_param, state, share_with, input_shapes, opts, share,
                              source_map)
    check_layer_count(len(net_param.layer) + len(net_param.layers))
    if input_shapes:
        opts["input_shapes"] = {k: tuple(int(d) for d in v) for k, v in input_shapes.items()}
        net_param = inputs_for_data_layers(net_param, opts["input_shapes"])
        net_param, source_map = declare_read_blobs(net_param, opts["input_shapes"], source_map)
    ir = build_ir(net_param, state, kind_of=registry_kind, source_map=source_map)
    # unknown types and blob counts: raised layer by layer, as CreateLayer/SetUp meet them
    setup_problems = {p.index: p for p in reversed(ir.problems)}
    names = NameTable()
    layers = CaffeLayers()
    modules: list[nn.Module] = []
    attrs: list[str] = []
    shapes: dict[BlobRef, Shape] = {}
    for pos, layer in enumerate(ir.layers):
        if layer.index in setup_problems:
            raise setup_problems[layer.index].error()
        bottom_shapes = [shapes[b] for b in layer.bottoms]
        module, top_shapes = _build_module(layer, bottom_shapes, state.phase, opts, source_map)
        for ref, shape in zip(layer.tops, top_shapes):
            shapes[ref] = shape
        attr = names.add(layer.name, key=pos)
        layers.add_module(attr, module)
        modules.append(module)
        attrs.append(attr)
    blob_shapes = {
        pos: [tuple(int(d) for d in b.shape) for b in layer_blobs(m)]
        for pos, m in enumerate(modules)
        if len(layer_blobs(m))
    }
    plan = plan_sharing(ir, blob_shapes, share)
    table = resolve_params(ir, blob_shapes, decls=plan.decls, source_map=source_map)
    _apply_table(table, modules)
    if share_with is not None:
        _share_trained(ir, modules, share_with)
    arg_names = NameTable()
    input_args = {ref: arg_names.add(ref.name) for ref in ir.inputs}
    return CaffeNet(
        ir, layers, attrs, modules, shapes, input_args, table, plan, net_param, source_map
    )
