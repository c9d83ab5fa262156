"""BatchReindex: top[i] = bottom[index[i]]; gradients accumulate on repeated indices."""

import pytest
import torch

from caffe2torch.errors import BuildError
from tests.layers.helpers_core import build, golden_params, run_golden, top_shapes

TEXT = 'name: "b" type: "BatchReindex" bottom: "x" bottom: "idx" top: "y"'


@golden_params("BatchReindex")
def test_golden(case_dir):
    run_golden(case_dir)


def test_repeated_indices_accumulate():
    m = build(TEXT, [(3, 2), (4,)])
    x = torch.randn(3, 2, requires_grad=True)
    y = m(x, torch.tensor([2.0, 0.0, 2.0, 2.0]))
    assert torch.equal(y, x.detach()[[2, 0, 2, 2]])
    y.backward(torch.ones(4, 2))
    assert x.grad.tolist() == [[1.0, 1.0], [0.0, 0.0], [3.0, 3.0]]
    assert top_shapes(m, [(3, 2), (5,)]) == [(5, 2)]


def test_index_must_be_1d():
    with pytest.raises(BuildError, match="1-D"):
        build(TEXT, [(3, 2), (4, 1)])
