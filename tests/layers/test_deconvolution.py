"""Deconvolution: weight layout (in, out / group, k...), output size, bilinear upsampling."""

import numpy as np
import pytest
import torch

from caffe2torch.errors import BuildError
from caffe2torch.layers import find_layer_spec
from tests.layers import vision_reference as ref
from tests.layers.helpers_core import build, golden_params, run_golden, top_shapes


@golden_params("Deconvolution")
def test_golden(case_dir):
    run_golden(case_dir)


def test_v1_name():
    assert find_layer_spec("DECONVOLUTION").type == "Deconvolution"


def _deconv(params, shape):
    return build(
        f'name: "d" type: "Deconvolution" bottom: "x" top: "y" convolution_param {{ {params} }}',
        [shape],
    )


@pytest.mark.parametrize(
    "params,stride,pad,dilation,group",
    [
        ("num_output: 3 kernel_size: 4 stride: 2 pad: 1", (2, 2), (1, 1), (1, 1), 1),
        (
            "num_output: 4 kernel_h: 3 kernel_w: 2 stride_h: 3 stride_w: 1 "
            "pad_h: 0 pad_w: 1 group: 2",
            (3, 1),
            (0, 1),
            (1, 1),
            2,
        ),
        ("num_output: 2 kernel_size: 3 dilation: 2", (1, 1), (0, 0), (2, 2), 1),
    ],
)
def test_matches_numpy_scatter(params, stride, pad, dilation, group):
    module = _deconv(params, (2, 4, 4, 5))
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for blob in module.blobs:
            blob.copy_(torch.randn(blob.shape, generator=g))
    x = np.random.default_rng(2).normal(size=(2, 4, 4, 5)).astype(np.float32)
    w, b = (blob.detach().numpy() for blob in module.blobs)
    want = ref.deconv_forward(x, w, b, stride, pad, dilation, group)
    got = module(torch.tensor(x)).detach().numpy()
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    assert top_shapes(module, [x.shape]) == [want.shape]


def test_weight_shape_is_in_by_out_over_group():
    module = _deconv("num_output: 6 kernel_size: 3 group: 2", (1, 4, 5, 5))
    assert [tuple(b.shape) for b in module.blobs] == [(4, 3, 3, 3), (6,)]


@pytest.mark.parametrize(
    "size,kernel,stride,pad,expected",
    [(4, 4, 2, 1, 8), (5, 3, 1, 1, 5), (3, 3, 3, 0, 9), (4, 3, 1, 0, 6)],
)
def test_output_size_rule(size, kernel, stride, pad, expected):
    module = _deconv(
        f"num_output: 1 kernel_size: {kernel} stride: {stride} pad: {pad}", (1, 1, size, size)
    )
    assert top_shapes(module, [(1, 1, size, size)]) == [(1, 1, expected, expected)]


def test_bilinear_filler_upsamples_like_fcn():
    # FCN's 2x upsampling: kernel 4, stride 2, pad 1, group = channels, bilinear weights.
    module = _deconv(
        "num_output: 3 group: 3 kernel_size: 4 stride: 2 pad: 1 bias_term: false "
        "weight_filler { type: 'bilinear' }",
        (1, 3, 4, 4),
    )
    x = torch.arange(48, dtype=torch.float32).reshape(1, 3, 4, 4)
    y = module(x)
    assert y.shape == (1, 3, 8, 8)
    # interior values interpolate linearly: columns 1..6 step by half the input step
    row = y[0, 0, 3, 1:7]
    torch.testing.assert_close(row[1:] - row[:-1], torch.full((5,), 0.5))


def test_empty_output_is_a_build_error():
    with pytest.raises(BuildError, match="empty"):
        _deconv("num_output: 1 kernel_size: 1 pad: 2", (1, 1, 2, 2))
