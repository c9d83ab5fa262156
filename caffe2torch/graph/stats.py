"""Per-layer statistics of a built net: bottom/top shapes, parameter counts and FLOPs.

FLOPs count the multiply-adds of the layers that dominate a net's cost (2 per
multiply-accumulate): Convolution and its depthwise forms, Deconvolution and
InnerProduct. Other layers report 0: their elementwise work is small beside these.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import prod
from typing import Any

Shape = tuple[int, ...]

# type -> which blob's element count multiplies the per-output kernel size
_CONV_TYPES = {"Convolution", "ConvolutionDepthwise", "DepthwiseConvolution"}


@dataclass(frozen=True)
class LayerStats:
    index: int  # position in the upgraded NetParameter
    name: str
    type: str
    bottom_shapes: list[Shape]
    top_shapes: list[Shape]
    params: int  # elements in the layer's param blobs (shared blobs counted in each layer)
    flops: int


def layer_flops(type_name: str, bottoms: list[Shape], tops: list[Shape], blobs: list[Any]) -> int:
    """Multiply-add FLOPs of one forward pass of a layer (0 for the cheap kinds)."""
    if not blobs or not tops:
        return 0
    weight = tuple(blobs[0].shape)
    per_output = prod(weight[1:]) if len(weight) > 1 else 1
    if type_name in _CONV_TYPES:
        # each top element is a dot product over (C_in / group) x kernel
        return 2 * sum(prod(t) for t in tops) * per_output
    if type_name == "Deconvolution":
        # each bottom element scatters into (C_out / group) x kernel outputs
        return 2 * sum(prod(b) for b in bottoms) * per_output
    if type_name == "InnerProduct":
        fan_in = prod(weight) // max(tops[0][-1] if tops[0] else 1, 1)
        return 2 * prod(tops[0]) * fan_in
    return 0


def net_stats(net: Any) -> list[LayerStats]:
    """Statistics of every layer of a built CaffeNet, in net order."""
    shapes = net._version_shapes
    out = []
    for layer, module in zip(net.ir.layers, net._modules_in_order):
        bottoms = [tuple(shapes[b]) for b in layer.bottoms]
        tops = [tuple(shapes[t]) for t in layer.tops if t in shapes]
        blobs = list(getattr(module, "blobs", []))
        out.append(LayerStats(
            index=layer.index,
            name=layer.name,
            type=layer.type,
            bottom_shapes=bottoms,
            top_shapes=tops,
            params=sum(int(b.numel()) for b in blobs),
            flops=layer_flops(layer.type, bottoms, tops, blobs),
        ))
    return out


def unique_param_count(net: Any) -> int:
    """Learnable and stored elements of the net, each shared blob once."""
    seen: dict[int, int] = {}
    for module in net._modules_in_order:
        for blob in getattr(module, "blobs", []):
            seen[id(blob)] = int(blob.numel())
    return sum(seen.values())
