"""Shared by the export tests: golden net cases (../shared/golden/nets) as loaded nets with
the golden weights, and their slow/fast split."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.golden import GoldenCase, case_dirs, fill_net_params, load_case

NET_CASES = case_dirs("nets")
# a case whose Caffe forward took this long (seconds, CPU) is a big net: marked slow
SLOW_SECONDS = 0.5


def net_params(cases: list[Path] | None = None) -> list:
    """pytest params, one per TEST-phase golden net, big nets marked slow."""
    import json

    out = []
    for path in NET_CASES if cases is None else cases:
        meta = json.loads((path / "meta.json").read_text())
        if meta.get("phase", "TEST") != "TEST":
            continue
        marks = [pytest.mark.slow] if meta.get("seconds_per_run", 0) >= SLOW_SECONDS else []
        out.append(pytest.param(path, id=path.name, marks=marks))
    return out


def loaded(case_dir: Path):
    """(case, net) with the golden weights filled in."""
    import caffe2torch as c2t

    case: GoldenCase = load_case(case_dir)
    net = c2t.load_net(case.path / "net.prototxt", phase=case.meta["phase"])
    fill_net_params(net, case)
    return case, net


def saved_blobs(case: GoldenCase) -> list[str]:
    return [k.split("/", 1)[1] for k in case.keys("blob/")]
