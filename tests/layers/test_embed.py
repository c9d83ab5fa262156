"""Embed: rows of W picked by integer-valued floats; no gradient to the indices."""

import numpy as np
import pytest
import torch

from caffe2torch.errors import BuildError
from tests.layers.helpers_core import build, golden_params, run_golden, top_shapes


@golden_params("Embed")
def test_golden(case_dir):
    run_golden(case_dir)


def _embed(params, shape):
    return build(
        f'name: "e" type: "Embed" bottom: "x" top: "y" embed_param {{ {params} }}', [shape]
    )


def test_forward_and_weight_gradient_match_numpy():
    module = _embed(
        "num_output: 3 input_dim: 5 weight_filler { type: 'gaussian' }"
        " bias_filler { type: 'uniform' }",
        (2, 3),
    )
    idx = np.array([[0, 4, 4], [2, 4, 0]], dtype=np.float32)
    y = module(torch.tensor(idx))
    w, b = (blob.detach().numpy() for blob in module.blobs)
    np.testing.assert_allclose(y.detach().numpy(), w[idx.astype(int)] + b)
    assert top_shapes(module, [(2, 3)]) == [(2, 3, 3)]
    g = np.random.default_rng(0).normal(size=(2, 3, 3)).astype(np.float32)
    y.backward(torch.tensor(g))
    want = np.zeros_like(w)
    np.add.at(want, idx.astype(int).ravel(), g.reshape(-1, 3))
    np.testing.assert_allclose(module.blobs[0].grad.numpy(), want, rtol=1e-6)
    np.testing.assert_allclose(module.blobs[1].grad.numpy(), g.reshape(-1, 3).sum(0), rtol=1e-5)


def test_indices_are_truncated_and_get_no_gradient():
    module = _embed("num_output: 2 input_dim: 4 bias_term: false", (3,))
    with torch.no_grad():
        module.blobs[0].copy_(torch.arange(8.0).reshape(4, 2))
    x = torch.tensor([1.9, 3.0, 0.2], requires_grad=True)
    y = module(x)
    torch.testing.assert_close(y, torch.tensor([[2.0, 3.0], [6.0, 7.0], [0.0, 1.0]]))
    y.sum().backward()
    assert x.grad is None


def test_out_of_range_index_fails():
    module = _embed("num_output: 2 input_dim: 4", (1,))
    with pytest.raises(IndexError):
        module(torch.tensor([4.0]))


@pytest.mark.parametrize("params", ["input_dim: 4", "num_output: 2"])
def test_sizes_are_required(params):
    with pytest.raises(BuildError):
        _embed(params, (2,))
