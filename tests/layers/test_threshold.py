"""Threshold: 1 where x > threshold (strict), else 0; no backward."""

import torch

from caffe2torch.layers import find_layer_spec
from tests.layers.helpers_core import build, golden_params, run_golden


@golden_params("Threshold")
def test_golden(case_dir):
    run_golden(case_dir)


def test_v1_name():
    assert find_layer_spec("THRESHOLD").type == "Threshold"


def test_strict_and_not_differentiable():
    m = build(
        'name: "t" type: "Threshold" bottom: "x" top: "y" threshold_param { threshold: 0.3 }',
        [(3,)],
    )
    x = torch.tensor([0.2, 0.3, 0.4], requires_grad=True)
    y = m(x)
    assert y.tolist() == [0.0, 0.0, 1.0]
    assert not y.requires_grad
