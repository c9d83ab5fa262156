"""layers/builtin_types.py (what lint knows of the built-in types without torch) is what the
layer registry holds today, and the torch-free lookups answer as the registry does."""

from __future__ import annotations

import subprocess
import sys

import pytest

from caffe2torch.layers import typeinfo
from caffe2torch.layers.builtin_types import TYPES
from caffe2torch.layers.registry import find_layer_spec, layer_kind
from tests.conftest import REPO

TOOL = REPO / "tools" / "gen_builtin_types.py"


def test_table_is_current() -> None:
    # a fresh interpreter: tests register layer types of their own in this one
    proc = subprocess.run([sys.executable, str(TOOL), "--check"], capture_output=True,
                          text=True, check=False)
    assert proc.returncode == 0, proc.stderr + proc.stdout


@pytest.fixture
def table_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(typeinfo, "_use_registry", lambda: False)


NAMES = [t.type for t in TYPES] + [a for t in TYPES for a in t.aliases]


@pytest.mark.usefixtures("table_only")
@pytest.mark.parametrize("name", NAMES)
def test_table_answers_like_the_registry(name: str) -> None:
    spec = find_layer_spec(name)
    assert spec is not None
    assert typeinfo.find_type_info(name) == typeinfo.info_of(spec)
    assert typeinfo.type_kind(name) == layer_kind(name)


@pytest.mark.usefixtures("table_only")
@pytest.mark.parametrize("name", ["Convolutin", "RELU6", "Nope", "PriorBox2", "Convolve"])
def test_unknown_types_get_the_registry_hint(name: str) -> None:
    assert typeinfo.find_type_info(name) is None
    assert typeinfo.type_kind(name) == layer_kind(name)


def test_live_registry_answers_for_registered_plugins() -> None:
    # the registry is imported here, so a type registered at run time is seen
    assert typeinfo._use_registry()
