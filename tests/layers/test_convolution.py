"""Convolution: N-D, groups, dilation, axis, several bottoms, Caffe's parameter forms."""

import numpy as np
import pytest
import torch

from caffe2torch.errors import BuildError
from caffe2torch.layers import find_layer_spec
from tests.layers import vision_reference as ref
from tests.layers.helpers_core import build, golden_params, run_golden, top_shapes


@golden_params("Convolution")
def test_golden(case_dir):
    run_golden(case_dir)


@pytest.mark.parametrize("alias", ["CONVOLUTION", "conv"])
def test_v1_and_v0_names(alias):
    assert find_layer_spec(alias).type == "Convolution"


def _conv(params, shape, tops=1):
    top = " ".join(f'top: "y{i}"' for i in range(tops))
    bottom = " ".join(f'bottom: "x{i}"' for i in range(tops))
    return build(
        f'name: "c" type: "Convolution" {bottom} {top} convolution_param {{ {params} }}',
        [shape] * tops,
    )


def _randomise(module, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for blob in module.blobs:
            blob.copy_(torch.randn(blob.shape, generator=g))


@pytest.mark.parametrize(
    "params,stride,pad,dilation,group",
    [
        ("num_output: 4 kernel_size: 3", (1, 1), (0, 0), (1, 1), 1),
        (
            "num_output: 6 kernel_h: 3 kernel_w: 2 stride_h: 2 stride_w: 1 "
            "pad_h: 1 pad_w: 2 group: 3",
            (2, 1),
            (1, 2),
            (1, 1),
            3,
        ),
        (
            "num_output: 4 kernel_size: 3 kernel_size: 2 dilation: 2 dilation: 3 pad: 2 group: 2",
            (1, 1),
            (2, 2),
            (2, 3),
            2,
        ),
        ("num_output: 3 kernel_size: 1 stride: 2", (2, 2), (0, 0), (1, 1), 1),
    ],
)
def test_2d_matches_numpy(params, stride, pad, dilation, group):
    module = _conv(params, (2, 6, 9, 8))
    _randomise(module)
    x = np.random.default_rng(1).normal(size=(2, 6, 9, 8)).astype(np.float32)
    w, b = (blob.detach().numpy() for blob in module.blobs)
    want = ref.conv_forward(x, w, b, stride, pad, dilation, group)
    got = module(torch.tensor(x))
    np.testing.assert_allclose(got.detach().numpy(), want, rtol=1e-4, atol=1e-4)
    assert top_shapes(module, [x.shape]) == [want.shape]


def test_weight_layout_and_bias_term():
    module = _conv("num_output: 6 kernel_h: 3 kernel_w: 5 group: 2 bias_term: false", (1, 4, 8, 8))
    assert [tuple(b.shape) for b in module.blobs] == [(6, 2, 3, 5)]


def test_default_fillers_are_zero_and_weight_filler_is_used():
    module = _conv("num_output: 2 kernel_size: 3", (1, 3, 5, 5))
    assert all(float(b.detach().abs().sum()) == 0.0 for b in module.blobs)
    module = _conv(
        "num_output: 2 kernel_size: 3 weight_filler { type: 'constant' value: 0.5 } "
        "bias_filler { type: 'constant' value: -1 }",
        (1, 3, 5, 5),
    )
    y = module(torch.ones(1, 3, 5, 5))
    torch.testing.assert_close(y, torch.full((1, 2, 3, 3), 27 * 0.5 - 1))


def test_1d_convolution_of_a_3d_blob():
    module = _conv("num_output: 2 kernel_size: 3 pad: 1", (2, 3, 7))
    _randomise(module)
    x = torch.randn(2, 3, 7)
    w, b = module.blobs
    # the same numbers as a 2-D convolution with a height-1 kernel
    want = torch.nn.functional.conv2d(x[:, :, None], w[:, :, None], b, padding=(0, 1))[:, :, 0]
    torch.testing.assert_close(module(x), want)


def test_3d_convolution_matches_a_sum_of_2d_slices():
    module = _conv(
        "num_output: 2 kernel_size: 2 kernel_size: 3 kernel_size: 3 pad: 0 pad: 1 pad: 1",
        (1, 2, 4, 5, 5),
    )
    _randomise(module)
    x = torch.randn(1, 2, 4, 5, 5)
    w, b = module.blobs
    got = module(x)
    assert got.shape == (1, 2, 3, 5, 5)
    for d in range(3):
        want = sum(
            torch.nn.functional.conv2d(x[:, :, d + i], w[:, :, i], padding=1) for i in range(2)
        )
        torch.testing.assert_close(got[:, :, d], want + b.view(1, -1, 1, 1), rtol=1e-4, atol=1e-5)


def test_axis_treats_leading_dims_as_batch():
    module = _conv("num_output: 2 kernel_size: 3 axis: 2", (2, 3, 4, 5, 5))
    _randomise(module)
    x = torch.randn(2, 3, 4, 5, 5)
    got = module(x)
    w, b = module.blobs
    want = torch.nn.functional.conv2d(x.reshape(6, 4, 5, 5), w, b).reshape(2, 3, 2, 3, 3)
    torch.testing.assert_close(got, want)


def test_zero_spatial_axes_is_a_channel_product():
    module = _conv("num_output: 3 kernel_size: 1", (4, 5))
    _randomise(module)
    x = torch.randn(4, 5)
    w, b = module.blobs
    torch.testing.assert_close(module(x), x @ w.t() + b)


def test_several_bottoms_share_the_weights():
    module = _conv("num_output: 2 kernel_size: 3", (1, 2, 5, 5), tops=2)
    _randomise(module)
    a, b = torch.randn(1, 2, 5, 5), torch.randn(1, 2, 5, 5)
    ya, yb = module(a, b)
    torch.testing.assert_close(ya, module(a, a)[0])
    torch.testing.assert_close(yb, module(b, b)[1])


def test_gradients_match_numerical_differences():
    module = _conv(
        "num_output: 2 kernel_size: 3 stride: 2 pad: 1 group: 2 dilation: 2", (1, 4, 7, 7)
    )
    module.double()
    x = torch.randn(1, 4, 7, 7, dtype=torch.float64, requires_grad=True)
    w = torch.randn(2, 2, 3, 3, dtype=torch.float64, requires_grad=True)
    b = torch.randn(2, dtype=torch.float64, requires_grad=True)

    def run(x, w, b):
        return torch.func.functional_call(module, {"blobs.0": w, "blobs.1": b}, (x,))

    assert torch.autograd.gradcheck(run, (x, w, b))


@pytest.mark.parametrize(
    "params,shape,message",
    [
        ("num_output: 3 kernel_size: 3 group: 2", (1, 4, 5, 5), "multiple of group"),
        ("num_output: 2 kernel_size: 3 group: 3", (1, 4, 5, 5), "divide"),
        ("num_output: 2 kernel_size: 3 kernel_h: 3 kernel_w: 3", (1, 2, 5, 5), "not both"),
        ("num_output: 2 kernel_size: 3 kernel_size: 3", (1, 2, 5, 5, 5), "once per spatial"),
        ("num_output: 2 kernel_h: 3 kernel_w: 3", (1, 2, 5, 5, 5), "2-D"),
        ("kernel_size: 3", (1, 2, 5, 5), "num_output"),
        ("num_output: 2 kernel_size: 7", (1, 2, 5, 5), "empty"),
        ("num_output: 2 kernel_size: 1", (1, 2, 2, 2, 2, 2), "spatial axes"),
        ("num_output: 2 kernel_size: 1 axis: 4", (1, 2, 5, 5), "out of range"),
    ],
)
def test_bad_parameters_are_build_errors(params, shape, message):
    with pytest.raises(BuildError, match=message):
        _conv(params, shape)


def test_deeplab_v1_hole_is_the_dilation(tmp_path) -> None:
    # DeepLab v1's convolution_param { hole: 2 } (kept field) is dilation 2
    from tests.layers.fork_net import build_fork_layer

    conv = ('name: "c" type: "Convolution" bottom: "x" top: "y" convolution_param {{ '
            'num_output: 2 kernel_size: 3 {extra} weight_filler {{ type: "gaussian" }} }}')
    _, holed = build_fork_layer(tmp_path, conv.format(extra="hole: 2"), (1, 1, 7, 7))
    _, dilated = build_fork_layer(tmp_path, conv.format(extra="dilation: 2"), (1, 1, 7, 7))
    dilated.blobs[0].data.copy_(holed.blobs[0].data)
    dilated.blobs[1].data.copy_(holed.blobs[1].data)
    x = torch.randn(1, 1, 7, 7)
    assert holed(x).shape == (1, 2, 3, 3)
    torch.testing.assert_close(holed(x), dilated(x))
