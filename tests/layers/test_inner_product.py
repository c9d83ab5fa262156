"""InnerProduct: flatten from `axis`, weight (N, K) or (K, N) with `transpose`."""

import numpy as np
import pytest
import torch

from caffe2torch.errors import BuildError
from caffe2torch.layers import find_layer_spec
from tests.layers.helpers_core import build, golden_params, run_golden, top_shapes


@golden_params("InnerProduct")
def test_golden(case_dir):
    run_golden(case_dir)


@pytest.mark.parametrize("alias", ["INNER_PRODUCT", "innerproduct"])
def test_v1_and_v0_names(alias):
    assert find_layer_spec(alias).type == "InnerProduct"


def _ip(params, shape):
    return build(
        f'name: "f" type: "InnerProduct" bottom: "x" top: "y" inner_product_param {{ {params} }}',
        [shape],
    )


@pytest.mark.parametrize(
    "params,shape,axis",
    [
        ("num_output: 4", (2, 3, 2, 2), 1),
        ("num_output: 5 axis: 2", (2, 3, 4), 2),
        ("num_output: 3 axis: -1", (2, 3, 4), 2),
        ("num_output: 2 axis: 0", (3, 2), 0),
        ("num_output: 4 transpose: true", (3, 6), 1),
    ],
)
def test_matches_numpy(params, shape, axis):
    module = _ip(params, shape)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for blob in module.blobs:
            blob.copy_(torch.randn(blob.shape, generator=g))
    x = np.random.default_rng(0).normal(size=shape).astype(np.float32)
    w, b = (blob.detach().numpy().astype(np.float64) for blob in module.blobs)
    flat = x.reshape(*shape[:axis], -1).astype(np.float64)
    want = flat @ (w if "transpose" in params else w.T) + b
    xt = torch.tensor(x, requires_grad=True)
    got = module(xt)
    np.testing.assert_allclose(got.detach().numpy(), want, rtol=1e-5, atol=1e-5)
    assert top_shapes(module, [shape]) == [want.shape]
    gy = np.ones(want.shape)
    got.backward(torch.ones(want.shape))
    grad_w = flat.reshape(-1, flat.shape[-1]).T @ gy.reshape(-1, want.shape[-1])
    grad_w = grad_w if "transpose" in params else grad_w.T
    np.testing.assert_allclose(module.blobs[0].grad.numpy(), grad_w, rtol=1e-5, atol=1e-5)


def test_blob_shapes():
    assert [tuple(b.shape) for b in _ip("num_output: 7", (2, 3, 4, 5)).blobs] == [(7, 60), (7,)]
    assert [
        tuple(b.shape) for b in _ip("num_output: 7 transpose: true bias_term: false", (2, 3)).blobs
    ] == [(3, 7)]


def test_weight_filler_statistics():
    module = _ip("num_output: 200 weight_filler { type: 'xavier' }", (2, 300))
    w = module.blobs[0].detach()
    bound = (3.0 / 300) ** 0.5
    assert w.abs().max() <= bound and w.abs().max() > 0.9 * bound


def test_num_output_required():
    with pytest.raises(BuildError, match="num_output"):
        _ip("bias_term: false", (2, 3))
