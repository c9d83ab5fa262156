"""Caffe layer types: a registry of builders producing nn.Modules with Caffe's numerics.

``register_layer`` here is the public one (``caffe2torch.register_layer``): the registry's
arguments plus ``fields=`` for a plug-in type's own parameter block.

The names load on first use (PEP 562), so that a torch-free submodule
(``caffe2torch.layers.typeinfo``, which lint reads) imports without torch."""

from __future__ import annotations

from typing import TYPE_CHECKING

from caffe2torch.lazy import lazy_names

if TYPE_CHECKING:
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

_HOME = {
    "layer_fields": "plugins",
    "load_entry_points": "plugins",
    "register_layer": "plugins",
    "BuildContext": "registry",
    "LayerSpec": "registry",
    "build_layer": "registry",
    "find_layer_spec": "registry",
    "get_layer_spec": "registry",
    "infer_top_shapes": "registry",
    "registered_types": "registry",
}

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


__getattr__ = lazy_names(
    __name__, {name: f"{__name__}.{home}" for name, home in _HOME.items()}, globals())


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
