"""Blobs a file only reads: a piece of a bigger net (NormFace's and AM-Softmax's prototxt/
blocks) reads blobs that no layer or input of the file makes, which Caffe refuses ("Unknown
bottom blob"). Given a shape for such a blob (``--input-shape``, ``input_shapes=``), the net
declares it as an input, as ``input: "x" input_shape { ... }`` at the top of the file would.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any


def read_before_made(net_param: Any) -> list[str]:
    """Blobs that no input makes and no layer makes except in place (reading it first), in
    the order the file first reads them: every phase that builds a layer reading them
    refuses it."""
    made = set(net_param.input)
    read: dict[str, None] = {}
    for layer in net_param.layer:
        read.update(dict.fromkeys(layer.bottom))
        made |= {t for k, t in enumerate(layer.top)
                 if k >= len(layer.bottom) or layer.bottom[k] != t}
    return [b for b in read if b not in made]


def declare_read_blobs(
    net_param: Any, shapes: Mapping[str, Sequence[int]], source_map: Any = None,
) -> tuple[Any, Any]:
    """``net_param`` with the blobs it only reads that ``shapes`` gives declared by one Input
    layer placed first (a copy), and ``source_map`` shifted to match (the Input layer points
    at the first layer that reads them); both unchanged when there is none."""
    loose = [b for b in read_before_made(net_param) if b in shapes]
    if not loose:
        return net_param, source_map
    out = type(net_param)()
    out.CopyFrom(net_param)
    names = {layer.name for layer in net_param.layer}
    name = next(n for n in ("input", *(f"input_{k}" for k in range(1, len(names) + 2)))
                if n not in names)
    layer = type(net_param.layer[0])(name=name, type="Input")
    for blob in loose:
        layer.top.append(blob)
        layer.input_param.shape.add().dim.extend(int(d) for d in shapes[blob])
    layers = [layer, *out.layer]
    del out.layer[:]
    out.layer.extend(layers)
    layer_positions = getattr(source_map, "layers", None)
    if layer_positions is not None and len(layer_positions) == len(net_param.layer):
        reader = next(i for i, ly in enumerate(net_param.layer)
                      if any(b in loose for b in ly.bottom))
        pos = layer_positions[reader]
        if dataclasses.is_dataclass(pos) and not isinstance(pos, type):
            # the reader's place, none of its fields (nor the unknown ones kept for it)
            pos = dataclasses.replace(pos, kind="input", fields={}, index=-1)
        source_map = dataclasses.replace(source_map, layers=[pos, *layer_positions])
    return out, source_map
