"""Each layer type has one registration: built-in modules never register a type twice (a
fork's options of a BVLC type live inside the BVLC builder); only a plug-in may replace."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from torch import nn

from caffe2torch.layers import registry
from caffe2torch.layers.bvlc import vision
from caffe2torch.layers.registry import BuildContext


@pytest.fixture
def saved_registry() -> Iterator[None]:
    registry._load_builtin_layers()
    specs, aliases = dict(registry._REGISTRY), dict(registry._ALIASES)
    yield
    registry._REGISTRY.clear()
    registry._REGISTRY.update(specs)
    registry._ALIASES.clear()
    registry._ALIASES.update(aliases)


def _builder(module: str) -> registry.Builder:
    def build(ctx: BuildContext) -> nn.Module:
        return nn.Identity()

    build.__module__ = module
    return build


def test_inner_product_is_built_by_the_bvlc_builder() -> None:
    spec = registry.get_layer_spec("InnerProduct")
    assert spec.builder is vision.build_inner_product
    # happynear's weight bottom, handled inside the builder
    assert (spec.bottoms.low, spec.bottoms.high) == (1, 2)


def test_a_built_in_type_cannot_be_registered_twice(saved_registry: None) -> None:
    for replace in (False, True):
        with pytest.raises(ValueError, match="registered once"):
            registry.register_layer("InnerProduct", replace=replace)(
                _builder("caffe2torch.layers.forks.face")
            )
    assert registry.get_layer_spec("InnerProduct").builder is vision.build_inner_product


def test_an_alias_of_another_type_is_refused(saved_registry: None) -> None:
    with pytest.raises(ValueError, match="alias 'INNER_PRODUCT'"):
        registry.register_layer("MyIP", aliases=("INNER_PRODUCT",))(_builder("my_plugin"))
    assert "MyIP" not in registry._REGISTRY


def test_a_plug_in_may_replace_with_replace_true(saved_registry: None) -> None:
    with pytest.raises(ValueError, match=r"replace=True takes it over"):
        registry.register_layer("ReLU")(_builder("my_plugin"))
    build = _builder("my_plugin")
    registry.register_layer("ReLU", replace=True)(build)
    assert registry.get_layer_spec("ReLU").builder is build
