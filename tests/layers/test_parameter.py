"""Parameter: one learnable blob given as the top."""

import torch

from tests.layers.helpers_core import build, golden_params, run_golden


@golden_params("Parameter")
def test_golden(case_dir):
    run_golden(case_dir)


def test_top_is_the_blob():
    m = build('name: "p" type: "Parameter" top: "w" parameter_param { shape { dim: 2 dim: 3 } }')
    assert tuple(m.blobs[0].shape) == (2, 3)
    y = m()
    y.backward(torch.full((2, 3), 2.0))
    assert torch.equal(m.blobs[0].grad, torch.full((2, 3), 2.0))
