"""Bias: learned or second-bottom bias broadcast from `axis` over `num_axes`."""

import numpy as np
import pytest
import torch

from caffe2torch.errors import BuildError
from tests.layers.helpers_core import build, golden_params, run_golden


@golden_params("Bias")
def test_golden(case_dir):
    run_golden(case_dir)


def _bias(params, shapes):
    bottoms = " ".join(f'bottom: "b{i}"' for i in range(len(shapes)))
    return build(f'name: "b" type: "Bias" {bottoms} top: "y" bias_param {{ {params} }}', shapes)


@pytest.mark.parametrize(
    "params,shape,blob_shape,axis",
    [
        ("", (2, 3, 4), (3,), 1),
        ("axis: 0 num_axes: 2", (2, 3, 4), (2, 3), 0),
        ("axis: -1", (2, 3, 4), (4,), 2),
        ("num_axes: 0", (2, 3), (), 0),
    ],
)
def test_learned_bias_matches_numpy(params, shape, blob_shape, axis):
    module = _bias(params + " filler { type: 'uniform' min: -1 max: 1 }", [shape])
    bias = module.blobs[0].detach().numpy()
    assert bias.shape == blob_shape
    x = np.random.default_rng(0).normal(size=shape).astype(np.float32)
    view = blob_shape + (1,) * (len(shape) - axis - len(blob_shape))
    np.testing.assert_allclose(module(torch.tensor(x)).detach().numpy(), x + bias.reshape(view))
    y = module(torch.tensor(x))
    y.backward(torch.ones(shape))
    np.testing.assert_allclose(
        module.blobs[0].grad.numpy(), np.full(blob_shape, x.size / max(bias.size, 1))
    )


def test_default_filler_is_zero():
    assert float(_bias("", [(2, 3)]).blobs[0].detach().abs().sum()) == 0.0


def test_second_bottom_gets_the_summed_gradient():
    module = _bias("axis: 0", [(2, 3, 4), (2, 3)])
    assert len(module.blobs) == 0
    x = torch.randn(2, 3, 4, requires_grad=True)
    b = torch.randn(2, 3, requires_grad=True)
    dy = torch.randn(2, 3, 4)
    module(x, b).backward(dy)
    torch.testing.assert_close(b.grad, dy.sum(2))
    torch.testing.assert_close(x.grad, dy)


def test_mismatched_second_bottom_is_a_build_error():
    with pytest.raises(BuildError, match="does not match"):
        _bias("", [(2, 3, 4), (4,)])
