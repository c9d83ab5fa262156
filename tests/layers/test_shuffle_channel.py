"""ShuffleChannel (farmingyard/ShuffleNet): output channel j * group + i is input channel
i * (C / group) + j."""

import numpy as np
import pytest
import torch

from caffe2torch.errors import BuildError
from tests.layers.helpers_core import build


def shuffle_ref(x, group_row):
    """Resize_cpu: copy block (i * cols + j) to (j * rows + i)."""
    _n, c = x.shape[:2]
    cols = c // group_row
    out = np.empty_like(x)
    for i in range(group_row):
        for j in range(cols):
            out[:, j * group_row + i] = x[:, i * cols + j]
    return out


@pytest.mark.parametrize(("group", "channels"), [(3, 12), (2, 6), (1, 4), (4, 4)])
def test_forward_and_backward(group, channels):
    layer = build(
        f'name: "s" type: "ShuffleChannel" bottom: "x" top: "y" '
        f"shuffle_channel_param {{ group: {group} }}",
        [(2, channels, 3, 2)],
    )
    rng = np.random.default_rng(5)
    x = rng.normal(size=(2, channels, 3, 2)).astype(np.float32)
    xt = torch.from_numpy(x).requires_grad_()
    y = layer(xt)
    np.testing.assert_array_equal(y.detach().numpy(), shuffle_ref(x, group))
    dy = rng.normal(size=x.shape).astype(np.float32)
    y.backward(torch.from_numpy(dy))
    # The fork's backward is Resize_cpu with rows and columns swapped.
    np.testing.assert_array_equal(xt.grad.numpy(), shuffle_ref(dy, channels // group))


def test_group_must_divide_channels():
    with pytest.raises(BuildError, match="group"):
        build(
            'name: "s" type: "ShuffleChannel" bottom: "x" top: "y" '
            "shuffle_channel_param { group: 3 }",
            [(1, 8, 2, 2)],
        )
