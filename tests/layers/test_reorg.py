"""Reorg (YOLO v2, BVLC/caffe PR #5906): darknet's reorg_cpu index arithmetic."""

import numpy as np
import pytest
import torch

from caffe2torch.errors import BuildError
from tests.layers.helpers_core import build, top_shapes


def reorg_ref(bottom, stride, forward):
    """reorg_cpu(bottom, b_w, b_h, b_c, b_n, stride, forward, top) of reorg_layer.hpp."""
    b_n, b_c, b_h, b_w = bottom.shape
    src = bottom.reshape(-1)
    top = np.empty_like(src)
    t_c, t_w, t_h = b_c // (stride * stride), b_w * stride, b_h * stride
    for n in range(b_n):
        for c in range(b_c):
            for h in range(b_h):
                for w in range(b_w):
                    bottom_index = w + b_w * (h + b_h * (c + b_c * n))
                    c2, offset = c % t_c, c // t_c
                    w2 = w * stride + offset % stride
                    h2 = h * stride + offset // stride
                    top_index = w2 + t_w * (h2 + t_h * (c2 + t_c * n))
                    if forward:
                        top[top_index] = src[bottom_index]
                    else:
                        top[bottom_index] = src[top_index]
    return top


@pytest.mark.parametrize(
    ("shape", "stride", "reverse"),
    [
        ((2, 8, 4, 6), 2, False),
        ((1, 64, 6, 6), 2, False),
        ((1, 9, 6, 3), 3, False),
        ((2, 8, 3, 2), 2, True),
    ],
    ids=["stride2", "yolo416_like", "stride3", "reverse"],
)
def test_forward_and_backward_match_the_fork(shape, stride, reverse):
    layer = build(
        f'name: "r" type: "Reorg" bottom: "x" top: "y" reorg_param {{ '
        f"stride: {stride} reverse: {str(reverse).lower()} }}",
        [shape],
    )
    n, c, h, w = shape
    s2 = stride * stride
    expected_shape = (
        (n, c // s2, h * stride, w * stride) if reverse else (n, c * s2, h // stride, w // stride)
    )
    assert top_shapes(layer, [shape]) == [expected_shape]
    x = np.random.default_rng(11).normal(size=shape).astype(np.float32)
    xt = torch.from_numpy(x).requires_grad_()
    y = layer(xt)
    # Forward_cpu passes reverse_ as reorg_cpu's `forward` flag.
    np.testing.assert_array_equal(y.detach().numpy().reshape(-1), reorg_ref(x, stride, reverse))
    dy = np.random.default_rng(12).normal(size=expected_shape).astype(np.float32)
    y.backward(torch.from_numpy(dy))
    # The gradient is the inverse permutation: reorg_cpu with the flag flipped.
    np.testing.assert_array_equal(
        xt.grad.numpy().reshape(-1), reorg_ref(dy.reshape(shape), stride, not reverse)
    )


@pytest.mark.parametrize(
    ("text", "shape"),
    [
        ("reorg_param { stride: 2 }", (1, 6, 4, 4)),
        ("reorg_param { stride: 2 }", (1, 8, 5, 4)),
        ("", (1, 8, 4, 4)),
    ],
    ids=["channels", "height", "no_stride"],
)
def test_bad_shapes_are_build_errors(text, shape):
    with pytest.raises(BuildError):
        build(f'name: "r" type: "Reorg" bottom: "x" top: "y" {text}', [shape])
