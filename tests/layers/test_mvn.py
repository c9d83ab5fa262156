"""MVN: eps added to the standard deviation; Caffe's backward; legacy 4-D top."""

import numpy as np
import pytest
import torch

from caffe2torch.errors import BuildError
from tests.layers.helpers_core import build, golden_params, run_golden, top_shapes


@golden_params("MVN")
def test_golden(case_dir):
    run_golden(case_dir)


def _mvn(params, shape):
    return build(f'name: "m" type: "MVN" bottom: "x" top: "y" mvn_param {{ {params} }}', [shape])


def _rows(x, across):
    return x.reshape(x.shape[0] if across else x.shape[0] * x.shape[1], -1)


@pytest.mark.parametrize("across", [False, True])
@pytest.mark.parametrize("eps", [1e-9, 0.1])
def test_forward_and_caffe_backward_match_numpy(across, eps):
    x = np.random.default_rng(0).normal(2.0, 1.5, size=(2, 3, 4, 5))
    module = _mvn(f"across_channels: {str(across).lower()} eps: {eps}", x.shape)
    xt = torch.tensor(x, dtype=torch.float32, requires_grad=True)
    y = module(xt)
    r = _rows(x, across)
    std = np.sqrt(((r - r.mean(1, keepdims=True)) ** 2).mean(1, keepdims=True)) + np.float32(eps)
    want = (r - r.mean(1, keepdims=True)) / std
    np.testing.assert_allclose(_rows(y.detach().numpy(), across), want, rtol=1e-4, atol=1e-5)
    dy = np.random.default_rng(1).normal(size=x.shape)
    y.backward(torch.tensor(dy, dtype=torch.float32))
    g = _rows(dy, across)
    # MVNLayer::Backward_cpu: (dy - mean(dy) - y * mean(dy * y)) / (std + eps)
    caffe = (g - g.mean(1, keepdims=True) - want * (g * want).mean(1, keepdims=True)) / std
    np.testing.assert_allclose(_rows(xt.grad.numpy(), across), caffe, rtol=1e-4, atol=1e-5)


def test_backward_is_not_the_exact_derivative_when_eps_is_large():
    module = _mvn("eps: 0.5", (1, 1, 2, 3))
    x = torch.randn(1, 1, 2, 3, dtype=torch.float64, requires_grad=True)
    assert not torch.autograd.gradcheck(module, (x,), raise_exception=False)


def test_mean_only():
    x = torch.randn(2, 3, 4, 5, requires_grad=True)
    y = _mvn("normalize_variance: false", x.shape)(x)
    torch.testing.assert_close(y, x - x.mean((2, 3), keepdim=True))
    y.backward(torch.ones_like(y))
    torch.testing.assert_close(x.grad, torch.zeros_like(x), atol=1e-6, rtol=0)


def test_top_has_the_legacy_4d_shape():
    module = _mvn("", (4, 6))
    assert top_shapes(module, [(4, 6)]) == [(4, 6, 1, 1)]


def test_more_than_four_axes_are_refused():
    with pytest.raises(BuildError, match="1 to 4 axes"):
        _mvn("", (1, 2, 3, 4, 5))
