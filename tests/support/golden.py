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


def fill_net_params(net: Any, case: GoldenCase) -> None:
    """weights.fill_net for a CaffeNet: layers in net order, each Parameter object once (a
    shared param keeps its owner's values); ``param/<layer>/<i>`` arrays override."""
    import torch

    weights = golden_weights()
    seen: set[int] = set()
    with torch.no_grad():
        for name in net.layer_names:
            module = net.module(name)
            layer_type = net.ir.layer(name).type
            for i, blob in enumerate(module.blobs):
                if id(blob) in seen or blob.numel() == 0:
                    continue
                seen.add(id(blob))
                key = f"param/{name}/{i}"
                if key in case.arrays:
                    value = case.arrays[key]
                else:
                    value = weights.fill(name, i, tuple(blob.shape), layer_type)
                blob.copy_(torch.as_tensor(value).reshape(blob.shape))


def run_layer_case(case: GoldenCase) -> None:
    """One golden layer case through load_net, as pycaffe ran it: the case's net.prototxt
    built for its phase, Input/data tops fed from ``input/*``, params from weights.py
    (overridden by ``param/*``), forward, then backward from ``top_diff/*`` or from the loss
    weights, compared on tops, ``param_after/*``, ``bottom_diff/*`` and ``param_diff/*``."""
    import torch

    import caffe2torch as c2t

    meta = case.meta
    net = c2t.load_net(case.path / "net.prototxt", phase=meta["phase"])
    fill_net_params(net, case)
    target = net.ir.layer(meta["layer"])
    backward = meta["backward"] or {}  # null for forward-only cases
    propagate = backward.get("propagate_down") or [True] * len(target.bottoms)
    wants_grad = set()
    if not meta["forward_only"]:
        wants_grad = {
            b.name for b, p in zip(target.bottoms, propagate)
            if p and b.name in backward.get("bottom_diff", [])
        }
    feed = {}
    for name in net.inputs:
        t = torch.tensor(case.arrays[f"input/{name}"], dtype=torch.float32)
        feed[name] = t.requires_grad_(name in wants_grad)
    out = net(feed, blobs=target.top_names)
    tops = [out[name] for name in target.top_names]
    for name, value in zip(target.top_names, tops):
        assert_matches(case, f"blob/{name}", value)
    module = net.module(target.name)
    for key in case.keys(f"param_after/{target.name}/"):
        assert_matches(case, key, module.blobs[int(key.rsplit("/", 1)[1])])
    if meta["forward_only"]:
        return
    if backward.get("loss_weight_driven"):
        net.loss(out).backward()
    else:
        pairs = [(t, torch.tensor(case.arrays[f"top_diff/{n}"]))
                 for n, t in zip(target.top_names, tops)
                 if f"top_diff/{n}" in case.arrays and t.requires_grad]
        if pairs:
            torch.autograd.backward([p[0] for p in pairs], [p[1] for p in pairs])
    for name in backward.get("bottom_diff", []):
        grad = feed[name].grad
        if grad is None and not target.tops:
            grad = torch.zeros_like(feed[name])  # a sink (Silence): Caffe's diff is 0
        assert grad is not None, f"{case.id}: no gradient reached bottom {name}"
        assert_matches(case, f"bottom_diff/{name}", grad)
    for key in case.keys(f"param_diff/{target.name}/"):
        blob = module.blobs[int(key.rsplit("/", 1)[1])]
        assert blob.grad is not None, f"{case.id}: no gradient for {key}"
        assert_matches(case, key, blob.grad)
