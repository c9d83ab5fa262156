"""Im2col: Caffe's column layout (channel-major, kernel offsets, then output positions)."""

import numpy as np
import pytest
import torch

from caffe2torch.errors import BuildError
from caffe2torch.layers import find_layer_spec
from tests.layers import vision_reference as ref
from tests.layers.helpers_core import build, golden_params, run_golden, top_shapes


@golden_params("Im2col")
def test_golden(case_dir):
    run_golden(case_dir)


@pytest.mark.parametrize("alias", ["IM2COL", "im2col"])
def test_v1_and_v0_names(alias):
    assert find_layer_spec(alias).type == "Im2col"


def _im2col(params, shape):
    return build(
        f'name: "i" type: "Im2col" bottom: "x" top: "y" convolution_param {{ {params} }}', [shape]
    )


@pytest.mark.parametrize(
    "params,shape,kernel,stride,pad,dilation",
    [
        ("kernel_size: 3 pad: 1", (2, 3, 5, 6), (3, 3), (1, 1), (1, 1), (1, 1)),
        (
            "kernel_h: 2 kernel_w: 3 stride: 2 pad_h: 0 pad_w: 1",
            (1, 2, 6, 7),
            (2, 3),
            (2, 2),
            (0, 1),
            (1, 1),
        ),
        ("kernel_size: 2 dilation: 2 pad: 1", (1, 2, 6, 6), (2, 2), (1, 1), (1, 1), (2, 2)),
        (
            "kernel_size: 2 kernel_size: 3 kernel_size: 2 stride: 1 stride: 2 stride: 1 "
            "dilation: 1 "
            "dilation: 1 dilation: 2 pad: 1",
            (2, 2, 3, 5, 6),
            (2, 3, 2),
            (1, 2, 1),
            (1, 1, 1),
            (1, 1, 2),
        ),
        ("kernel_size: 3", (2, 3, 8), (3,), (1,), (0,), (1,)),
    ],
)
def test_matches_caffe_im2col(params, shape, kernel, stride, pad, dilation):
    x = np.random.default_rng(0).normal(size=shape).astype(np.float32)
    module = _im2col(params, shape)
    got = module(torch.tensor(x)).numpy()
    want = np.stack([ref.im2col(img, kernel, stride, pad, dilation) for img in x])
    np.testing.assert_array_equal(got, want)
    assert top_shapes(module, [shape]) == [want.shape]


def test_axis_keeps_leading_dims():
    x = torch.randn(2, 3, 4, 5, 5)
    got = _im2col("kernel_size: 2 axis: 2", x.shape)(x)
    assert got.shape == (2, 3, 16, 4, 4)
    torch.testing.assert_close(got[1, 2], _im2col("kernel_size: 2", (1, 4, 5, 5))(x[1, 2:3])[0])


def test_gradient_is_col2im():
    x = torch.randn(1, 2, 5, 5, requires_grad=True)
    _im2col("kernel_size: 3 pad: 1", x.shape)(x).sum().backward()
    # each pixel is copied once per kernel offset that lands inside the padded input
    counts = torch.nn.functional.conv2d(torch.ones(1, 1, 5, 5), torch.ones(1, 1, 3, 3), padding=1)
    torch.testing.assert_close(x.grad, counts.expand(1, 2, 5, 5))


def test_needs_a_spatial_axis():
    with pytest.raises(BuildError, match="spatial"):
        _im2col("kernel_size: 1", (4, 3))
