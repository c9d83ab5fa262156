"""Caffe layer types: a registry of builders producing nn.Modules with Caffe's numerics."""

from caffe2torch.layers.plugins import layer_fields, load_entry_points
from caffe2torch.layers.registry import (
    BuildContext,
    LayerSpec,
    build_layer,
    find_layer_spec,
    get_layer_spec,
    infer_top_shapes,
    register_layer,
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
