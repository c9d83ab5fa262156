"""EuclideanLoss: sum((a - b)^2) / (2N), gradients to both bottoms."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from caffe2torch.errors import BuildError
from caffe2torch.layers.registry import find_layer_spec
from tests.layers.helpers_core import build, golden_params, run_golden

TEXT = 'type: "EuclideanLoss" bottom: "a" bottom: "b" top: "loss"'


@golden_params("EuclideanLoss")
def test_golden(case_dir):
    run_golden(case_dir)


def test_value_and_gradients():
    rng = np.random.default_rng(1)
    a_np = rng.normal(size=(5, 3, 2)).astype(np.float32)
    b_np = rng.normal(size=(5, 6)).astype(np.float32)  # same count per item, other shape
    module = build(TEXT, [a_np.shape, b_np.shape])
    a = torch.tensor(a_np, requires_grad=True)
    b = torch.tensor(b_np, requires_grad=True)
    loss = module(a, b)
    (3 * loss).backward()  # a loss weight of 3, applied by the net
    diff = a_np.astype(np.float64) - b_np.reshape(a_np.shape)
    assert loss.shape == ()
    np.testing.assert_allclose(loss.item(), (diff**2).sum() / 5 / 2, rtol=1e-6)
    np.testing.assert_allclose(a.grad.numpy(), 3 * diff / 5, rtol=1e-5)
    np.testing.assert_allclose(b.grad.numpy(), -3 * diff.reshape(5, 6) / 5, rtol=1e-5)


def test_dimension_mismatch_is_a_build_error():
    with pytest.raises(BuildError, match="same dimension"):
        build(TEXT, [(2, 3), (2, 4)])


@pytest.mark.parametrize("alias", ["EUCLIDEAN_LOSS", "euclidean_loss"])
def test_aliases(alias):
    spec = find_layer_spec(alias)
    assert spec.type == "EuclideanLoss" and spec.loss
