"""Slice along axis at slice_point, or into equal parts; legacy slice_dim."""

import pytest
import torch

from caffe2torch.errors import BuildError
from caffe2torch.layers import find_layer_spec
from tests.layers.helpers_core import build, golden_params, run_golden, top_shapes


@golden_params("Slice")
def test_golden(case_dir):
    run_golden(case_dir)


def test_v1_name():
    assert find_layer_spec("SLICE").type == "Slice"


def test_points():
    m = build(
        'name: "s" type: "Slice" bottom: "x" top: "a" top: "b" top: "c" '
        "slice_param { axis: 1 slice_point: 1 slice_point: 4 }",
        [(2, 6)],
    )
    x = torch.arange(12.0).reshape(2, 6)
    a, b, c = m(x)
    assert torch.equal(a, x[:, :1]) and torch.equal(b, x[:, 1:4]) and torch.equal(c, x[:, 4:])


def test_equal_parts_follow_the_runtime_size():
    m = build(
        'name: "s" type: "Slice" bottom: "x" top: "a" top: "b" slice_param { axis: 0 }', [(4, 3)]
    )
    assert top_shapes(m, [(10, 3)]) == [(5, 3), (5, 3)]


def test_legacy_slice_dim():
    m = build(
        'name: "s" type: "Slice" bottom: "x" top: "a" top: "b" slice_param { slice_dim: 2 }',
        [(1, 2, 4)],
    )
    assert top_shapes(m, [(1, 2, 4)]) == [(1, 2, 2), (1, 2, 2)]


def test_gradient_flows_to_every_part():
    m = build('name: "s" type: "Slice" bottom: "x" top: "a" top: "b"', [(2, 4)])
    x = torch.randn(2, 4, requires_grad=True)
    a, b = m(x)
    torch.autograd.backward([a, b], [torch.ones(2, 2), 2 * torch.ones(2, 2)])
    assert x.grad.tolist() == [[1.0, 1.0, 2.0, 2.0]] * 2


@pytest.mark.parametrize(
    ("param", "shape", "message"),
    [
        ("slice_param { axis: 1 }", (2, 5), "equal parts"),
        ("slice_param { slice_point: 1 slice_point: 2 }", (2, 5), "exactly 1"),
        ("slice_param { slice_point: 5 }", (2, 5), "increase strictly"),
        ("slice_param { axis: 3 }", (2, 5), "out of range"),
    ],
    ids=["indivisible", "too_many_points", "point_at_end", "bad_axis"],
)
def test_errors(param, shape, message):
    with pytest.raises(BuildError, match=message):
        build(f'name: "s" type: "Slice" bottom: "x" top: "a" top: "b" {param}', [shape])
