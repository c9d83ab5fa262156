"""Silence: consumes bottoms, no tops."""

import pytest
import torch

from caffe2torch.errors import BuildError
from caffe2torch.layers import find_layer_spec
from tests.layers.helpers_core import build, golden_params, run_golden


@golden_params("Silence")
def test_golden(case_dir):
    run_golden(case_dir)


def test_no_tops():
    assert find_layer_spec("SILENCE").type == "Silence"
    m = build('name: "s" type: "Silence" bottom: "a" bottom: "b"', [(2,), (3,)])
    assert m(torch.zeros(2), torch.zeros(3)) == ()


def test_tops_are_refused():
    with pytest.raises(BuildError, match="top"):
        build('name: "s" type: "Silence" bottom: "a" top: "b"', [(2,)])
