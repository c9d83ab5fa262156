"""Scale: learned or second-bottom scale from `axis` over `num_axes`, optional bias blob."""

import numpy as np
import pytest
import torch

from caffe2torch.errors import BuildError
from tests.layers.helpers_core import build, golden_params, run_golden


@golden_params("Scale")
def test_golden(case_dir):
    run_golden(case_dir)


def _scale(params, shapes):
    bottoms = " ".join(f'bottom: "b{i}"' for i in range(len(shapes)))
    return build(f'name: "s" type: "Scale" {bottoms} top: "y" scale_param {{ {params} }}', shapes)


@pytest.mark.parametrize(
    "params,shape,blob_shape,axis",
    [
        ("", (2, 3, 4), (3,), 1),
        ("axis: 0 num_axes: 2", (2, 3, 4), (2, 3), 0),
        ("axis: -1", (2, 3, 4), (4,), 2),
        ("num_axes: -1", (2, 3, 4), (3, 4), 1),
        ("num_axes: 0", (2, 3, 4), (), 0),
    ],
)
def test_learned_scale_and_bias_match_numpy(params, shape, blob_shape, axis):
    module = _scale(
        params + " bias_term: true filler { type: 'gaussian' } bias_filler { type: 'gaussian' }",
        [shape],
    )
    scale, bias = (b.detach().numpy() for b in module.blobs)
    assert scale.shape == blob_shape and bias.shape == blob_shape
    x = np.random.default_rng(0).normal(size=shape).astype(np.float32)
    view = blob_shape + (1,) * (len(shape) - axis - len(blob_shape))
    want = x * scale.reshape(view) + bias.reshape(view)
    np.testing.assert_allclose(module(torch.tensor(x)).detach().numpy(), want, rtol=1e-6, atol=1e-6)


def test_default_scale_is_one_and_bias_zero():
    module = _scale("bias_term: true", [(2, 3)])
    x = torch.randn(2, 3)
    torch.testing.assert_close(module(x), x)


def test_second_bottom_scale_and_gradients():
    module = _scale(
        "bias_term: true bias_filler { type: 'constant' value: 0.5 }", [(2, 3, 4), (3,)]
    )
    assert [tuple(b.shape) for b in module.blobs] == [(3,)]
    x = torch.randn(2, 3, 4, requires_grad=True)
    s = torch.randn(3, requires_grad=True)
    y = module(x, s)
    torch.testing.assert_close(y, x * s.view(3, 1) + 0.5)
    dy = torch.randn(2, 3, 4)
    y.backward(dy)
    torch.testing.assert_close(s.grad, (dy * x).sum((0, 2)))
    torch.testing.assert_close(x.grad, dy * s.view(3, 1))
    torch.testing.assert_close(module.blobs[0].grad, dy.sum((0, 2)))


def test_scalar_second_bottom():
    module = _scale("axis: 1", [(2, 3), ()])
    torch.testing.assert_close(module(torch.ones(2, 3), torch.tensor(2.5)), torch.full((2, 3), 2.5))


@pytest.mark.parametrize(
    "params,shapes,message",
    [
        ("", [(2, 3, 4), (4,)], "does not match"),
        ("axis: 1 num_axes: 3", [(2, 3, 4)], "extends past"),
        ("axis: 3", [(2, 3, 4)], "out of range"),
        ("num_axes: -2", [(2, 3)], "num_axes"),
    ],
)
def test_bad_shapes_are_build_errors(params, shapes, message):
    with pytest.raises(BuildError, match=message):
        _scale(params, shapes)
