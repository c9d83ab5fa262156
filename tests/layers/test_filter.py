"""Filter: keep the items whose selector is non-zero (data-dependent count)."""

import pytest
import torch

from caffe2torch.errors import BuildError
from tests.layers.helpers_core import build, golden_params, run_golden, top_shapes


@golden_params("Filter")
def test_golden(case_dir):
    run_golden(case_dir)


TEXT = 'name: "f" type: "Filter" bottom: "x" bottom: "y" bottom: "sel" top: "fx" top: "fy"'


def test_selects_and_backpropagates():
    m = build(TEXT, [(4, 2), (4, 3, 1), (4, 1)])
    x = torch.randn(4, 2, requires_grad=True)
    y = torch.randn(4, 3, 1)
    sel = torch.tensor([[0.0], [2.0], [0.0], [-1.0]])
    fx, fy = m(x, y, sel)
    assert torch.equal(fx, x.detach()[[1, 3]]) and torch.equal(fy, y[[1, 3]])
    fx.backward(torch.ones(2, 2))
    assert x.grad.tolist() == [[0.0, 0.0], [1.0, 1.0], [0.0, 0.0], [1.0, 1.0]]


def test_infer_shapes_gives_the_batch_as_upper_bound():
    m = build(TEXT, [(4, 2), (4, 3, 1), (4, 1)])
    assert top_shapes(m, [(4, 2), (4, 3, 1), (4, 1)]) == [(4, 2), (4, 3, 1)]


@pytest.mark.parametrize(
    ("shapes", "tops", "message"),
    [
        ([(4, 2), (4, 3)], 1, "selector"),
        ([(4, 2), (3, 1)], 1, "items"),
        ([(4, 2), (4, 1)], 2, "one top per filtered bottom"),
    ],
    ids=["selector_shape", "batch_mismatch", "top_count"],
)
def test_errors(shapes, tops, message):
    with pytest.raises(BuildError, match=message):
        build('name: "f" type: "Filter" bottom: "x" bottom: "sel" top: "a"', shapes, num_tops=tops)
