"""Axpy (SENet): top = a * x + y with a per-(num, channel) scale."""

import numpy as np
import pytest
import torch

from caffe2torch.errors import BuildError
from tests.layers.helpers_core import build


@pytest.mark.parametrize("scale_shape", [(2, 3, 1, 1), (2, 3)], ids=["4d_scale", "2d_scale"])
def test_forward_and_backward_match_the_fork(scale_shape):
    shapes = [scale_shape, (2, 3, 4, 5), (2, 3, 4, 5)]
    layer = build('name: "axpy" type: "Axpy" bottom: "a" bottom: "x" bottom: "y" top: "z"', shapes)
    rng = np.random.default_rng(8)
    a, x, y, dz = (rng.normal(size=s).astype(np.float32) for s in [*shapes, shapes[1]])
    a4 = a.reshape(2, 3, 1, 1)
    ts = [torch.from_numpy(v).requires_grad_() for v in (a, x, y)]
    z = layer(*ts)
    # caffe_copy(y) then caffe_axpy(a, x): y + a * x in float.
    np.testing.assert_array_equal(z.detach().numpy(), y + a4 * x)
    z.backward(torch.from_numpy(dz))
    np.testing.assert_allclose(
        ts[0].grad.numpy().reshape(2, 3), (dz * x).sum(axis=(2, 3)), rtol=1e-5, atol=1e-5
    )
    np.testing.assert_array_equal(ts[1].grad.numpy(), a4 * dz)
    np.testing.assert_array_equal(ts[2].grad.numpy(), dz)


def test_shape_checks():
    with pytest.raises(BuildError):
        build(
            'name: "axpy" type: "Axpy" bottom: "a" bottom: "x" bottom: "y" top: "z"',
            [(2, 3, 2, 1), (2, 3, 4, 5), (2, 3, 4, 5)],
        )
