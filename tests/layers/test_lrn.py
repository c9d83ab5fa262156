"""LRN: ACROSS_CHANNELS alpha / size, WITHIN_CHANNEL alpha / size^2 with AVE-pool padding."""

import numpy as np
import pytest
import torch

from caffe2torch.errors import BuildError
from caffe2torch.layers import find_layer_spec
from tests.layers import vision_reference as ref
from tests.layers.helpers_core import build, golden_params, run_golden


@golden_params("LRN")
def test_golden(case_dir):
    run_golden(case_dir)


@pytest.mark.parametrize("alias", ["LRN", "lrn"])
def test_v1_and_v0_names(alias):
    assert find_layer_spec(alias).type == "LRN"


def _lrn(params, shape):
    return build(f'name: "n" type: "LRN" bottom: "x" top: "y" lrn_param {{ {params} }}', [shape])


@pytest.mark.parametrize(
    "size,alpha,beta,k,channels",
    [
        (5, 1e-4, 0.75, 1.0, 8),
        (3, 0.5, 0.75, 2.0, 6),
        (5, 1.0, 0.5, 1.0, 3),
        (1, 2.0, 0.75, 0.5, 3),
        (7, 0.1, 0.9, 1.5, 10),
    ],
)
def test_across_channels_matches_numpy(size, alpha, beta, k, channels):
    x = np.random.default_rng(0).normal(size=(2, channels, 4, 3)).astype(np.float32) * 3
    module = _lrn(f"local_size: {size} alpha: {alpha} beta: {beta} k: {k}", x.shape)
    got = module(torch.tensor(x)).numpy()
    want = ref.lrn_across(x, size, np.float32(alpha), np.float32(beta), np.float32(k))
    np.testing.assert_allclose(got, want, rtol=2e-5, atol=1e-6)


@pytest.mark.parametrize("size", [3, 5])
def test_within_channel_matches_numpy_and_ignores_k(size):
    x = np.random.default_rng(1).normal(size=(2, 3, 6, 5)).astype(np.float32) * 4
    params = f"norm_region: WITHIN_CHANNEL local_size: {size} alpha: 0.3 beta: 0.75"
    got = _lrn(params, x.shape)(torch.tensor(x)).numpy()
    want = ref.lrn_within(x, size, np.float32(0.3), np.float32(0.75))
    np.testing.assert_allclose(got, want, rtol=2e-5, atol=1e-6)
    with_k = _lrn(params + " k: 7", x.shape)(torch.tensor(x)).numpy()
    np.testing.assert_array_equal(with_k, got)


@pytest.mark.parametrize("region", ["ACROSS_CHANNELS", "WITHIN_CHANNEL"])
def test_gradient_is_the_derivative(region):
    module = _lrn(f"norm_region: {region} local_size: 3 alpha: 0.8 beta: 0.75 k: 1.5", (1, 4, 4, 4))
    x = torch.randn(1, 4, 4, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(module, (x,))


def test_even_size_is_refused():
    with pytest.raises(BuildError, match="odd"):
        _lrn("local_size: 4", (1, 3, 4, 4))


def test_needs_4d():
    with pytest.raises(BuildError, match="4-D"):
        _lrn("local_size: 3", (2, 3))
