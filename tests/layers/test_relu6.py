"""ReLU6: min(max(x, 0), 6); the fork's gradient passes only where 0 < x < 6."""

import numpy as np
import torch

from tests.layers.helpers_core import build


def test_forward_and_backward_match_the_fork():
    layer = build('name: "r" type: "ReLU6" bottom: "x" top: "x"', [(9,)])
    x = np.array([-3.0, -0.0, 0.0, 0.5, 5.9, 6.0, 6.5, 1e9, -1e9], np.float32)
    dy = np.arange(1, 10, dtype=np.float32)
    xt = torch.from_numpy(x).requires_grad_()
    y = layer(xt)
    np.testing.assert_array_equal(y.detach().numpy(), np.minimum(np.maximum(x, 0), 6))
    y.backward(torch.from_numpy(dy))
    np.testing.assert_array_equal(xt.grad.numpy(), dy * ((x > 0) & (x < 6)))
