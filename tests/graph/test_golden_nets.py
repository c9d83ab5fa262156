"""Whole real networks against real BVLC Caffe (../shared/golden/nets, see its README):
load_net on the case's prototxt, params from weights.py (shared params filled once, by
their owner), inputs from input/*, forward compared on blob/*, then backward from
top_diff/* or from the loss, compared on bottom_diff/* and param_diff/*."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import caffe2torch as c2t
from tests.support.golden import GoldenCase, assert_matches, case_dirs, fill_net_params, load_case

CASES = case_dirs("nets")
RESULTS: dict[str, str] = {}


def run_net_case(case: GoldenCase) -> None:
    meta = case.meta
    net = c2t.load_net(case.path / "net.prototxt", phase=meta["phase"])
    fill_net_params(net, case)
    backward = meta["backward"] or {}
    wants_grad = set(backward.get("bottom_diff") or [])
    feed = {}
    for name in net.inputs:
        t = torch.tensor(case.arrays[f"input/{name}"], dtype=torch.float32)
        feed[name] = t.requires_grad_(name in wants_grad)
    saved = [k.split("/", 1)[1] for k in case.keys("blob/")]
    out = net(feed, blobs=saved)
    for name in saved:
        assert_matches(case, f"blob/{name}", out[name])
    if meta["forward_only"]:
        return
    if case.keys("top_diff/"):
        pairs = [(out[k.split("/", 1)[1]], torch.tensor(case.arrays[k]))
                 for k in case.keys("top_diff/")]
        torch.autograd.backward([p[0] for p in pairs], [p[1] for p in pairs])
    else:
        net.loss(out).backward()
    for name in wants_grad:
        assert feed[name].grad is not None, f"{case.id}: no gradient reached input {name}"
        assert_matches(case, f"bottom_diff/{name}", feed[name].grad)
    for key in case.keys("param_diff/"):
        layer, index = key[len("param_diff/"):].rsplit("/", 1)
        blob = net.params[layer][int(index)]
        assert blob.grad is not None, f"{case.id}: no gradient for {key}"
        assert_matches(case, key, blob.grad)


def print_summary(request: pytest.FixtureRequest, lines: list[str]) -> None:
    """Print past pytest's output capture (a count the suite reports on every run)."""
    capman = request.config.pluginmanager.getplugin("capturemanager")
    if capman is None:
        print("\n".join(lines))
        return
    with capman.global_and_fixture_disabled():
        print("\n" + "\n".join(lines))


@pytest.fixture(scope="module", autouse=True)
def _summary(request):
    yield
    if not RESULTS:
        return
    passed = sorted(k for k, v in RESULTS.items() if v == "ok")
    failed = {k: v for k, v in RESULTS.items() if v != "ok"}
    lines = [f"golden nets: {len(passed)}/{len(RESULTS)} passed"]
    lines += [f"  FAILED {k}: {v}" for k, v in sorted(failed.items())]
    print_summary(request, lines)


@pytest.mark.skipif(not CASES, reason="../shared/golden/nets is absent")
@pytest.mark.parametrize("case_dir", CASES, ids=[p.name for p in CASES])
def test_golden_net(case_dir: Path) -> None:
    case = load_case(case_dir)
    try:
        run_net_case(case)
    except BaseException as exc:
        RESULTS[case_dir.name] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
        raise
    RESULTS[case_dir.name] = "ok"
