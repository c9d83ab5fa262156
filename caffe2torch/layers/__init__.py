"""Caffe layer types: a registry of builders producing nn.Modules with Caffe's numerics.

``register_layer`` here is the public one (``caffe2torch.register_layer``): the registry's
arguments plus ``fields=`` for a plug-in type's own parameter block."""

from caffe2torch.layers.plugins import layer_fields, load_entry_points, register_layer
from caffe2torch.layers.registry import (
    BuildContext,
    LayerSpec,
    build_layer,
    find_layer_spec,
    get_layer_spec,
    infer_top_shapes,
    registered_types,
)

__all__ = [
    "BuildContext",
    "LayerSpec",
    "build_layer",
    "find_layer_spec",
    "get_layer_spec",
    "infer_top_shapes",
    "layer_fields",
    "load_entry_points",
    "register_layer",
    "registered_types",
]
