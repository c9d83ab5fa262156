"""ConvolutionDepthwise: one filter per input channel, weight (C, 1, kh, kw); num_output and
group are not read by the fork."""

import numpy as np
import pytest
import torch

from tests.layers._depthwise_reference import depthwise_backward_ref, depthwise_ref
from tests.layers.helpers_core import build, top_shapes


@pytest.mark.parametrize(
    ("body", "stride", "pad", "dilation"),
    [
        ("num_output: 24 kernel_size: 3 stride: 2 pad: 1 bias_term: false", (2, 2), (1, 1), (1, 1)),
        ("num_output: 6 group: 6 kernel_size: 3 pad: 1", (1, 1), (1, 1), (1, 1)),
        (
            "kernel_h: 3 kernel_w: 2 stride_h: 1 stride_w: 2 pad_h: 0 pad_w: 1 dilation: 2",
            (1, 2),
            (0, 1),
            (2, 2),
        ),
    ],
    ids=["shufflenet_v2_no_group", "with_group_and_bias", "rectangular_dilated"],
)
def test_forward_and_backward_match_the_fork(body, stride, pad, dilation):
    shape = (2, 6, 7, 8)
    layer = build(
        f'name: "dw" type: "ConvolutionDepthwise" bottom: "x" top: "y" '
        f'convolution_param {{ {body} weight_filler {{ type: "msra" }} }}',
        [shape],
    )
    weight = layer.blobs[0]
    assert weight.shape[:2] == (6, 1)
    rng = np.random.default_rng(6)
    with torch.no_grad():
        weight.copy_(torch.from_numpy(rng.normal(size=tuple(weight.shape)).astype(np.float32)))
        if len(layer.blobs) > 1:
            layer.blobs[1].copy_(torch.from_numpy(rng.normal(size=6).astype(np.float32)))
    w = weight.detach().numpy().astype(np.float64)
    b = layer.blobs[1].detach().numpy() if len(layer.blobs) > 1 else None
    x = rng.normal(size=shape).astype(np.float32)
    expected = depthwise_ref(x.astype(np.float64), w, b, stride, pad, dilation)
    assert top_shapes(layer, [shape]) == [expected.shape]
    xt = torch.from_numpy(x).requires_grad_()
    y = layer(xt)
    np.testing.assert_allclose(y.detach().numpy(), expected, rtol=1e-5, atol=1e-5)
    dy = rng.normal(size=expected.shape)
    y.backward(torch.from_numpy(dy.astype(np.float32)))
    db, dw, dx = depthwise_backward_ref(x.astype(np.float64), w, dy, stride, pad, dilation)
    np.testing.assert_allclose(weight.grad.numpy(), dw, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(xt.grad.numpy(), dx, rtol=1e-4, atol=1e-4)
    if b is not None:
        np.testing.assert_allclose(layer.blobs[1].grad.numpy(), db, rtol=1e-4, atol=1e-4)
