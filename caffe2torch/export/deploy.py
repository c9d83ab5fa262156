"""The deploy view of a built net: what ONNX export, the standalone code and the drawer
ship.

From a net built for one phase (TEST by default), keep the layers that compute the chosen
outputs from the chosen inputs:

* inputs: the data tops (data layers become plain graph inputs), or the blobs named by
  ``branch`` (one tower of a Siamese net: its layers, the shared weights once);
* outputs: the blobs named by ``outputs``, else the blobs no kept layer consumes once loss
  and Accuracy layers are dropped (the blobs those layers read become outputs, as in a
  deploy prototxt);
* layers: the ones on a path from the inputs to the outputs, in net order.

The result is a new NetParameter (one Input layer with the input shapes, then the kept
layers with their phase rules cleared) built by the normal builder, with every param blob
copied from the source net by layer name.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from caffe2torch.errors import BuildError
from caffe2torch.graph import CaffeNet, build_net
from caffe2torch.ir.graph import BlobRef, LayerIR
from caffe2torch.layers.registry import find_layer_spec, layer_blobs
from caffe2torch.proto import caffe_pb2
from caffe2torch.suggest import close_names, did_you_mean

# Layers that only score a prediction: Caffe's deploy nets do not have them.
_SCORING_TYPES = frozenset({"Accuracy", "Silence"})


@dataclass
class DeployView:
    """A deploy net and how it was cut from its source."""

    net: CaffeNet
    inputs: list[str]
    outputs: list[str]
    dropped: list[str] = field(default_factory=list)  # layer names left out


def is_scoring(layer: LayerIR) -> bool:
    """A loss, Accuracy or Silence layer (dropped from a deploy view unless asked)."""
    return layer.kind.loss or layer.type in _SCORING_TYPES


def blob_label(layer_type: str, index: int) -> str:
    """The registry's name of param blob ``index`` of a layer type (``blob<i>`` if none)."""
    spec = find_layer_spec(layer_type)
    if spec is not None and index < len(spec.blobs):
        return spec.blobs[index]
    return f"blob{index}"


def _refs_for(net: CaffeNet, names: Sequence[str], what: str) -> list[BlobRef]:
    known = net.ir.blob_names()
    refs = []
    for name in names:
        if name not in known:
            raise BuildError(
                f"{what} '{name}' is not a blob of the {net.phase} net",
                hint=did_you_mean(close_names(name, known, cutoff=0.5), quote="'"),
            )
        refs.append(net.ir.final(name))
    return refs


def _branch_start(net: CaffeNet, ref: BlobRef) -> BlobRef:
    """A branch input is the blob as its first consumer sees it (before in-place layers
    of the tower itself)."""
    versions = sorted(r for r in net.ir.producer if r.name == ref.name)
    for r in versions:
        if net.ir.consumers.get(r):
            return r
    return versions[-1]


def plan_view(
    net: CaffeNet,
    outputs: Sequence[str] | None = None,
    branch: Sequence[str] | None = None,
    keep_losses: bool = False,
) -> tuple[list[BlobRef], list[int], list[BlobRef], list[str]]:
    """(input refs, kept layer positions, output refs, dropped layer names)."""
    ir = net.ir
    if branch:
        inputs = [_branch_start(net, r) for r in _refs_for(net, branch, "branch input")]
    else:
        inputs = list(ir.inputs)
    available = set(inputs)
    computable: list[int] = []
    dropped: list[str] = []
    for pos, layer in enumerate(ir.layers):
        if layer.is_data:
            continue
        if not keep_losses and is_scoring(layer):
            dropped.append(layer.name)
            continue
        if all(b in available for b in layer.bottoms):
            # a layer with no bottoms (DummyData, Parameter) belongs to the tower only when
            # something computable reads it: decided by the walk back from the outputs
            computable.append(pos)
            available.update(layer.tops)
    if outputs:
        out_refs = _refs_for(net, outputs, "output")
        for ref in out_refs:
            if ref not in available:
                raise BuildError(
                    f"output '{ref.name}' cannot be computed from the input(s) "
                    f"{', '.join(r.name for r in inputs) or '(none)'}",
                    hint="choose other --outputs or --branch",
                )
    else:
        consumed = {b for pos in computable for b in ir.layers[pos].bottoms}
        finals: dict[str, BlobRef] = {}
        for pos in computable:
            for top in ir.layers[pos].tops:
                if top.name.startswith("("):  # a loss's anonymous top
                    continue
                if top.name not in finals or top.version > finals[top.name].version:
                    finals[top.name] = top
        out_refs = [finals[n] for n in sorted(finals) if finals[n] not in consumed]
        if not out_refs:
            raise BuildError(
                f"the {net.phase} net has no output left once its loss layers are dropped",
                hint="name the outputs with --outputs BLOB",
            )
    needed: set[BlobRef] = set(out_refs)
    kept: list[int] = []
    for pos in reversed(computable):
        layer = ir.layers[pos]
        if any(t in needed for t in layer.tops):
            kept.append(pos)
            needed.update(layer.bottoms)
    kept.reverse()
    used_inputs = [r for r in inputs if r in needed]
    dropped += [ir.layers[p].name for p in computable if p not in kept]
    return used_inputs, kept, out_refs, dropped


@dataclass(frozen=True)
class _KeptFields:
    """What the view's builders read of the file beyond the protos: the fields the schema
    lacks (plug-in blocks, a fork's own fields) that ``net`` was read with, by the view's
    layer index. Without them a plug-in module of the view would fall back to its defaults."""

    extras: list[Any]
    by_layer: dict[int, list[Any]]
    path: str | None

    @staticmethod
    def of(net: CaffeNet, view_index: dict[int, int]) -> _KeptFields | None:
        source = net.source_map
        if source is None or not getattr(source, "extras", None):
            return None
        by_layer = {view_index[pos]: source.extras_of(net.ir.layers[pos].index)
                    for pos in view_index}
        return _KeptFields(list(source.extras), by_layer, getattr(source, "path", None))

    def extras_of(self, index: int) -> list[Any]:
        return self.by_layer.get(index, [])


def deploy_view(
    net: CaffeNet,
    outputs: Sequence[str] | None = None,
    branch: Sequence[str] | None = None,
    keep_losses: bool = False,
    batch: int | None = None,
    shared: bool = False,
) -> DeployView:
    """Cut ``net`` to its deploy view (see the module doc); ``batch`` replaces the batch
    (first) axis of every input. ``shared``: the view's layers use ``net``'s own params
    (no copy: quick, for a view that is only run or only looked at, never changed)."""
    ir = net.ir
    inputs, kept, out_refs, dropped = plan_view(net, outputs, branch, keep_losses)
    shapes = net._version_shapes
    proto = caffe_pb2.NetParameter(name=ir.name)
    if inputs:
        data = proto.layer.add(name="input", type="Input")
        for ref in inputs:
            data.top.append(ref.name)
            shape = list(shapes[ref])
            if batch is not None and shape:
                shape[0] = int(batch)
            data.input_param.shape.add(dim=shape)
        if data.name in {ir.layers[p].name for p in kept}:
            data.name = "input_data"
    for pos in kept:
        layer = proto.layer.add()
        layer.CopyFrom(ir.layers[pos].proto)
        layer.ClearField("include")
        layer.ClearField("exclude")
        layer.ClearField("blobs")
    offset = 1 if inputs else 0
    kept_fields = _KeptFields.of(net, {pos: i + offset for i, pos in enumerate(kept)})
    view = build_net(proto, net.state, share_with=net if shared else None,
                     source_map=kept_fields)
    view.train(net.training)
    if not shared:
        copy_params(net, view, {pos: i + offset for i, pos in enumerate(kept)})
    return DeployView(view, [r.name for r in inputs], [r.name for r in out_refs], dropped)


def copy_params(source: CaffeNet, target: CaffeNet, positions: dict[int, int]) -> None:
    """Param blobs (and buffers) of layer ``positions[i]`` of ``target`` from layer ``i``
    of ``source``."""
    with torch.no_grad():
        for src, dst in positions.items():
            theirs = source._modules_in_order[src]
            mine = target._modules_in_order[dst]
            for a, b in zip(layer_blobs(mine), layer_blobs(theirs)):
                a.copy_(b.detach().to(a.device))
            _copy_state(theirs, mine)


def _copy_state(source: torch.nn.Module, target: torch.nn.Module) -> None:
    """Buffers too (anything a layer keeps besides its blobs)."""
    buffers = dict(source.named_buffers())
    for key, buf in target.named_buffers():
        if key in buffers and buffers[key].shape == buf.shape:
            buf.copy_(buffers[key])


def reset_states(net: torch.nn.Module) -> None:
    """Recurrent layers keep h_T between forwards: start every export/check from zeros."""
    for module in net.modules():
        reset = getattr(module, "reset_state", None)
        if callable(reset):
            reset()
