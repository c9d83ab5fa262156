"""Reading golden cases made by real BVLC Caffe (../shared/golden, see its README)."""

from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from tests.conftest import GOLDEN


@dataclass
class GoldenCase:
    path: Path
    meta: dict[str, Any]
    arrays: dict[str, np.ndarray]

    @property
    def id(self) -> str:
        return f"{self.path.parent.name}/{self.path.name}"

    def tolerance(self, key: str) -> tuple[float, float]:
        tol = self.meta.get("tolerances", {}).get(key)
        if tol:
            return float(tol["rtol"]), float(tol["atol"])
        return float(self.meta.get("rtol", 1e-4)), float(self.meta.get("atol", 1e-6))

    def keys(self, prefix: str) -> list[str]:
        return [k for k in self.arrays if k.startswith(prefix)]


def case_dirs(kind: str) -> list[Path]:
    """Every case folder of golden/<kind> (layers: <Type>/<variant>; nets: <name>)."""
    root = GOLDEN / kind
    if not root.exists():
        return []
    return sorted(p.parent for p in root.rglob("meta.json"))


def load_case(path: Path) -> GoldenCase:
    meta = json.loads((path / "meta.json").read_text())
    with np.load(path / "data.npz") as data:
        arrays = {k: data[k] for k in data.files}
    return GoldenCase(path, meta, arrays)


@cache
def golden_weights() -> Any:
    """The golden weights module (../shared/golden/weights.py)."""
    spec = importlib.util.spec_from_file_location("golden_weights", GOLDEN / "weights.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def assert_matches(case: GoldenCase, key: str, actual: Any) -> None:
    """Compare ``actual`` with ``case.arrays[key]`` under the case's per-key tolerance."""
    expected = case.arrays[key]
    got = np.asarray(actual.detach().cpu().numpy() if hasattr(actual, "detach") else actual)
    assert got.shape == expected.shape, f"{case.id} {key}: shape {got.shape} != {expected.shape}"
    rtol, atol = case.tolerance(key)
    np.testing.assert_allclose(got, expected, rtol=rtol, atol=atol, err_msg=f"{case.id} {key}")
