"""DepthwiseConvolution: a Convolution with one group per input channel."""

import numpy as np
import pytest
import torch

from caffe2torch.errors import BuildError
from tests.layers._depthwise_reference import depthwise_backward_ref, depthwise_ref
from tests.layers.helpers_core import build


@pytest.mark.parametrize(
    ("body", "out_channels", "stride"),
    [
        ("num_output: 4 bias_term: false pad: 1 kernel_size: 3 engine: CAFFE stride: 2", 4, 2),
        ("num_output: 8 group: 4 kernel_size: 3 pad: 1", 8, 1),
    ],
    ids=["mobilenet_v2_no_group", "multiplier_2"],
)
def test_forward_and_backward_match_the_fork(body, out_channels, stride):
    shape = (2, 4, 6, 5)
    layer = build(
        f'name: "dw" type: "DepthwiseConvolution" bottom: "x" top: "y" '
        f"convolution_param {{ {body} }}",
        [shape],
    )
    rng = np.random.default_rng(7)
    with torch.no_grad():
        for blob in layer.blobs:
            blob.copy_(torch.from_numpy(rng.normal(size=tuple(blob.shape)).astype(np.float32)))
    assert tuple(layer.blobs[0].shape) == (out_channels, 1, 3, 3)
    w = layer.blobs[0].detach().numpy().astype(np.float64)
    b = layer.blobs[1].detach().numpy() if len(layer.blobs) > 1 else None
    x = rng.normal(size=shape)
    xt = torch.from_numpy(x.astype(np.float32)).requires_grad_()
    y = layer(xt)
    expected = depthwise_ref(x, w, b, (stride, stride), (1, 1))
    np.testing.assert_allclose(y.detach().numpy(), expected, rtol=1e-5, atol=1e-5)
    dy = rng.normal(size=expected.shape)
    y.backward(torch.from_numpy(dy.astype(np.float32)))
    db, dw, dx = depthwise_backward_ref(x, w, dy, (stride, stride), (1, 1))
    np.testing.assert_allclose(layer.blobs[0].grad.numpy(), dw, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(xt.grad.numpy(), dx, rtol=1e-4, atol=1e-4)
    if b is not None:
        np.testing.assert_allclose(layer.blobs[1].grad.numpy(), db, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(
    "body",
    ["num_output: 4 group: 2 kernel_size: 3", "num_output: 6 kernel_size: 3"],
    ids=["group", "num_output"],
)
def test_not_depthwise_is_a_build_error(body):
    with pytest.raises(BuildError):
        build(
            f'name: "dw" type: "DepthwiseConvolution" bottom: "x" top: "y" '
            f"convolution_param {{ {body} }}",
            [(1, 4, 5, 5)],
        )
