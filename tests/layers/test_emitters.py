"""The one-place rule for `convert`'s standalone source: the emitter of a layer module class
is registered in the module that defines the class (layers/bvlc/<family>.py or
layers/forks/<fork>.py), so adding a layer type touches one folder; export/ only looks
emitters up."""

from __future__ import annotations

import pytest
from torch import nn

import caffe2torch.export.standalone  # noqa: F401  (the convert driver: adds no emitter)
from caffe2torch.layers import emit
from caffe2torch.layers.registry import registered_types

_FAMILIES = ("caffe2torch.layers.bvlc.", "caffe2torch.layers.forks.")


def _builtin_emitters() -> dict[type, emit.Emitter]:
    registered_types()  # loads every built-in family and fork module
    return {c: fn for c, fn in emit.emitters().items() if c.__module__.startswith("caffe2torch.")}


def test_each_emitter_lives_beside_its_module_class() -> None:
    found = _builtin_emitters()
    assert len(found) > 60  # the built-in classes convert writes (a lost import shows here)
    misplaced = [
        f"{cls.__module__}.{cls.__qualname__}: emitter {fn.__module__}.{fn.__qualname__}"
        for cls, fn in found.items()
        if fn.__module__ != cls.__module__
    ]
    assert not misplaced, "\n".join(misplaced)


def test_emitters_are_for_layer_modules_of_the_layers_package() -> None:
    for cls in _builtin_emitters():
        assert cls.__module__.startswith(_FAMILIES), cls
        assert issubclass(cls, nn.Module), cls
        assert emit.emitter_for(cls) is not None


def test_a_second_emitter_for_a_class_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(emit, "_EMITTERS", {})

    class Thing(nn.Module):
        pass

    def first(e: emit.Emit) -> list[str]:
        return []

    def second(e: emit.Emit) -> list[str]:
        return []

    emit.emitter(Thing)(first)
    emit.emitter(Thing)(first)  # the same function again (a module reload): accepted
    with pytest.raises(ValueError, match="already has the emitter"):
        emit.emitter(Thing)(second)
    assert emit.emitter_for(Thing) is first
