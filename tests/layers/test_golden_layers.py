"""Every golden layer case of real BVLC Caffe through load_net: forward, backward, param
gradients."""

from __future__ import annotations

import pytest

from tests.support.golden import case_dirs, load_case, run_layer_case

CASES = case_dirs("layers")


@pytest.mark.skipif(not CASES, reason="../shared/golden/layers is absent")
@pytest.mark.parametrize("case_dir", CASES, ids=[f"{p.parent.name}/{p.name}" for p in CASES])
def test_golden_layer(case_dir):
    run_layer_case(load_case(case_dir))
