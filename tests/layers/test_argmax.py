"""ArgMax: indices (and values) of the top_k entries; ties go to the larger index."""

import pytest
import torch

from caffe2torch.errors import BuildError
from caffe2torch.layers import find_layer_spec
from tests.layers.helpers_core import build, golden_params, run_golden, top_shapes


@golden_params("ArgMax")
def test_golden(case_dir):
    run_golden(case_dir)


def test_v1_name():
    assert find_layer_spec("ARGMAX").type == "ArgMax"


def test_ties_prefer_the_larger_index():
    m = build('name: "a" type: "ArgMax" bottom: "x" top: "y" argmax_param { top_k: 3 }', [(1, 5)])
    x = torch.tensor([[1.0, 3.0, 2.0, 3.0, 2.0]])
    assert m(x).reshape(-1).tolist() == [3.0, 1.0, 4.0]


def test_top1_tie_and_axis():
    m = build('name: "a" type: "ArgMax" bottom: "x" top: "y" argmax_param { axis: 1 }', [(2, 3)])
    x = torch.tensor([[5.0, 5.0, 1.0], [0.0, 1.0, 1.0]])
    assert m(x).tolist() == [[1.0], [2.0]]


def test_without_axis_shape_has_at_least_three_axes():
    m = build(
        'name: "a" type: "ArgMax" bottom: "x" top: "y" argmax_param { out_max_val: true top_k: 2 }',
        [(2, 3, 2, 2)],
    )
    assert top_shapes(m, [(2, 3, 2, 2)]) == [(2, 2, 2, 1)]
    x = torch.arange(24.0).reshape(2, 3, 2, 2)
    y = m(x)
    assert y[0, :, :, 0].tolist() == [[11.0, 10.0], [11.0, 10.0]]
    m2 = build('name: "a" type: "ArgMax" bottom: "x" top: "y"', [(4, 6)])
    assert top_shapes(m2, [(4, 6)]) == [(4, 1, 1)]


def test_no_gradient():
    m = build('name: "a" type: "ArgMax" bottom: "x" top: "y"', [(2, 3)])
    assert not m(torch.randn(2, 3, requires_grad=True)).requires_grad


def test_top_k_too_large():
    with pytest.raises(BuildError, match="exceeds"):
        build(
            'name: "a" type: "ArgMax" bottom: "x" top: "y" argmax_param { axis: 1 top_k: 4 }',
            [(2, 3)],
        )
