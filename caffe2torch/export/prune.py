"""Deploy files that keep a scoring layer of the TEST net whose inputs they no longer
have (``Accuracy`` reading a ``label`` no layer makes): Caffe's pycaffe refuses them, yet
the rest of the net is a fine deploy net. For export such layers are left out, with a note.

A layer is left out when, in the chosen NetState, one of its bottoms is made by no earlier
layer and the layer is a loss, Accuracy or Silence layer, or is included for the TEST
phase only (an ``include { phase: TEST }`` rule); layers that read only what such a layer
made are left out with it. Anything else with a missing bottom stays, for the builder to
report as usual.
"""

from __future__ import annotations

from typing import Any

from caffe2torch.ir import NetState, filter_layers
from caffe2torch.layers.registry import find_layer_spec
from caffe2torch.proto import caffe_pb2

_SCORING = frozenset({"Accuracy", "Silence"})


def _droppable(layer: Any) -> bool:
    spec = find_layer_spec(layer.type)
    if layer.type in _SCORING or (spec is not None and spec.loss):
        return True
    return any(r.HasField("phase") and r.phase == caffe_pb2.TEST for r in layer.include)


def prune_unfed(net_param: Any, state: NetState) -> tuple[Any, list[str]]:
    """(the net without the layers the module doc describes, a note per layer left out).
    Returns ``net_param`` itself when nothing is left out."""
    made = set(net_param.input)
    dropped: dict[int, str] = {}
    lost: set[str] = set()
    for i in filter_layers(net_param.layer, state):
        layer = net_param.layer[i]
        missing = [b for b in layer.bottom if b not in made]
        from_dropped = [b for b in missing if b in lost]
        if missing and (_droppable(layer) or len(from_dropped) == len(missing)):
            dropped[i] = (f"{layer.name} ({layer.type}): its input "
                          f"{', '.join(repr(b) for b in missing)} is made by no layer of the "
                          f"{state.phase} net")
            lost.update(t for t in layer.top if t not in made)
            continue
        made.update(layer.top)
    if not dropped:
        return net_param, []
    out = caffe_pb2.NetParameter()
    out.CopyFrom(net_param)
    del out.layer[:]
    out.layer.extend(ly for i, ly in enumerate(net_param.layer) if i not in dropped)
    return out, list(dropped.values())
