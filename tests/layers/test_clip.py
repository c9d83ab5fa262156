"""Clip: clamp(x, min, max); the gradient passes at x == min and x == max."""

import pytest
import torch

from caffe2torch.errors import BuildError
from tests.layers.helpers_core import build, golden_params, run_golden


@golden_params("Clip")
def test_golden(case_dir):
    run_golden(case_dir)


def test_gradient_passes_at_the_bounds():
    m = build('name: "c" type: "Clip" bottom: "x" top: "y" clip_param { min: -1 max: 2 }', [(5,)])
    x = torch.tensor([-3.0, -1.0, 0.5, 2.0, 4.0], requires_grad=True)
    y = m(x)
    y.backward(torch.ones(5))
    assert y.tolist() == [-1.0, -1.0, 0.5, 2.0, 2.0]
    assert x.grad.tolist() == [0.0, 1.0, 1.0, 1.0, 0.0]


def test_min_above_max_is_refused():
    with pytest.raises(BuildError, match="greater than max"):
        build('name: "c" type: "Clip" bottom: "x" top: "y" clip_param { min: 3 max: 2 }', [(5,)])
