"""Concat along axis (or the legacy concat_dim)."""

import pytest
import torch

from caffe2torch.errors import BuildError
from caffe2torch.layers import find_layer_spec
from tests.layers.helpers_core import build, golden_params, run_golden, top_shapes


@golden_params("Concat")
def test_golden(case_dir):
    run_golden(case_dir)


@pytest.mark.parametrize("alias", ["CONCAT", "concat"])
def test_names(alias):
    assert find_layer_spec(alias).type == "Concat"


def test_negative_axis_and_shapes():
    m = build(
        'name: "c" type: "Concat" bottom: "a" bottom: "b" top: "y" concat_param { axis: -1 }',
        [(2, 3, 4), (2, 3, 1)],
    )
    assert top_shapes(m, [(2, 3, 4), (2, 3, 1)]) == [(2, 3, 5)]


def test_legacy_concat_dim():
    m = build(
        'name: "c" type: "Concat" bottom: "a" bottom: "b" top: "y" concat_param { concat_dim: 0 }',
        [(2, 3), (1, 3)],
    )
    a, b = torch.randn(2, 3), torch.randn(1, 3)
    assert torch.equal(m(a, b), torch.cat([a, b]))


def test_axis_and_concat_dim_together_are_refused():
    with pytest.raises(BuildError, match="not both"):
        build(
            'name: "c" type: "Concat" bottom: "a" bottom: "b" top: "y" '
            "concat_param { axis: 1 concat_dim: 1 }",
            [(2, 3), (2, 3)],
        )


def test_mismatched_shapes_are_refused():
    with pytest.raises(BuildError, match="must match"):
        build('name: "c" type: "Concat" bottom: "a" bottom: "b" top: "y"', [(2, 3, 4), (2, 3, 5)])
