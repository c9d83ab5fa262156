"""SPP: per-level kernel = ceil(size / bins), pad (kernel * bins - size + 1) / 2, concatenated."""

import math

import numpy as np
import pytest
import torch

from caffe2torch.errors import BuildError
from caffe2torch.layers.bvlc.vision import spp_level_geometry
from tests.layers import vision_reference as ref
from tests.layers.helpers_core import build, golden_params, run_golden, top_shapes


@golden_params("SPP")
def test_golden(case_dir):
    run_golden(case_dir)


def _spp(height, pool, shape):
    return build(
        f'name: "s" type: "SPP" bottom: "x" top: "y" '
        f"spp_param {{ pyramid_height: {height} pool: {pool} }}",
        [shape],
    )


@pytest.mark.parametrize("pool", ["MAX", "AVE"])
@pytest.mark.parametrize("hw", [(8, 8), (7, 10), (13, 6)])
def test_matches_pooling_levels(pool, hw):
    x = np.random.default_rng(0).normal(size=(2, 3, *hw)).astype(np.float32)
    module = _spp(3, pool, x.shape)
    got = module(torch.tensor(x)).numpy()
    parts = []
    for level in range(3):
        bins = 2**level
        kernel = tuple(math.ceil(s / bins) for s in hw)
        pad = tuple((k * bins - s + 1) // 2 for k, s in zip(kernel, hw))
        top, _ = ref.pool_forward(x, pool.lower(), kernel, kernel, pad)
        parts.append(top.reshape(2, -1))
    want = np.concatenate(parts, axis=1)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
    assert top_shapes(module, [x.shape]) == [want.shape]


def test_level_geometry():
    assert spp_level_geometry((13, 13), 0) == ((13, 13), (0, 0))
    assert spp_level_geometry((13, 13), 1) == ((7, 7), (1, 1))
    assert spp_level_geometry((13, 10), 2) == ((4, 3), (2, 1))


def test_one_level_is_a_4d_global_pooling():
    x = torch.randn(2, 3, 5, 6)
    y = _spp(1, "MAX", x.shape)(x)
    torch.testing.assert_close(y, x.amax(dim=(2, 3), keepdim=True))


def test_too_small_input_is_a_build_error():
    # 1 row and 2 bins: kernel 1, pad 1 -- Caffe's pooling refuses pad >= kernel.
    with pytest.raises(BuildError, match="pad"):
        _spp(2, "MAX", (1, 1, 1, 4))
