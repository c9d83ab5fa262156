"""Permute (SSD): the listed axes first, the rest after them in their old order."""

import numpy as np
import pytest
import torch

from caffe2torch.errors import BuildError
from tests.layers.helpers_core import build, top_shapes


def permute_ref(x, order):
    """Permute() of permute_layer.cpp: top[i] = bottom[old_idx] via the step arrays."""
    shape = x.shape
    top_shape = [shape[o] for o in order]
    old_steps = [int(np.prod(shape[i + 1 :])) for i in range(len(shape))]
    new_steps = [int(np.prod(top_shape[i + 1 :])) for i in range(len(shape))]
    flat = x.reshape(-1)
    top = np.empty_like(flat)
    for i in range(flat.size):
        old_idx, idx = 0, i
        for j, o in enumerate(order):
            old_idx += (idx // new_steps[j]) * old_steps[o]
            idx %= new_steps[j]
        top[i] = flat[old_idx]
    return top.reshape(top_shape)


@pytest.mark.parametrize(
    ("orders", "full"),
    [([0, 2, 3, 1], [0, 2, 3, 1]), ([2], [2, 0, 1, 3]), ([], [0, 1, 2, 3]), ([3, 1], [3, 1, 0, 2])],
    ids=["ssd_nhwc", "one_axis", "identity", "two_axes"],
)
def test_forward_and_backward(orders, full):
    body = " ".join(f"order: {o}" for o in orders)
    layer = build(
        f'name: "p" type: "Permute" bottom: "x" top: "y" permute_param {{ {body} }}', [(2, 3, 4, 5)]
    )
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2, 3, 4, 5)).astype(np.float32)
    expected = permute_ref(x, full)
    assert top_shapes(layer, [x.shape]) == [expected.shape]
    xt = torch.from_numpy(x).requires_grad_()
    y = layer(xt)
    np.testing.assert_array_equal(y.detach().numpy(), expected)
    dy = rng.normal(size=expected.shape).astype(np.float32)
    y.backward(torch.from_numpy(dy))
    # Backward writes bottom_diff[old_idx] = top_diff[i]: the inverse permutation.
    np.testing.assert_array_equal(xt.grad.numpy(), np.transpose(dy, np.argsort(full)))


@pytest.mark.parametrize("body", ["order: 4", "order: 1 order: 1"], ids=["too_big", "duplicate"])
def test_bad_orders_are_build_errors(body):
    with pytest.raises(BuildError):
        build(
            f'name: "p" type: "Permute" bottom: "x" top: "y" permute_param {{ {body} }}',
            [(2, 3, 4, 5)],
        )
