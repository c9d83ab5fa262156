"""Split: the bottom once per top; the tops' gradients add up."""

import torch

from caffe2torch.layers import find_layer_spec
from tests.layers.helpers_core import build, golden_params, run_golden


@golden_params("Split")
def test_golden(case_dir):
    run_golden(case_dir)


def test_names():
    assert find_layer_spec("SPLIT").type == find_layer_spec("split").type == "Split"


def test_three_tops_sum_gradients():
    m = build('name: "s" type: "Split" bottom: "x" top: "a" top: "b" top: "c"', [(3,)])
    x = torch.randn(3, requires_grad=True)
    tops = m(x)
    assert len(tops) == 3 and all(torch.equal(t, x) for t in tops)
    torch.autograd.backward(list(tops), [torch.full((3,), float(i + 1)) for i in range(3)])
    assert x.grad.tolist() == [6.0, 6.0, 6.0]
