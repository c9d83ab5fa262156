"""ContrastiveLoss: 1/(2N) normalisation, margin, legacy_version, Caffe's gradient."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from caffe2torch.errors import BuildError
from caffe2torch.layers.registry import find_layer_spec
from tests.layers.helpers_core import build, golden_params, run_golden


def text(params=""):
    return ('type: "ContrastiveLoss" bottom: "a" bottom: "b" bottom: "y" top: "loss" '
            f"contrastive_loss_param {{ {params} }}")


def reference(a, b, y, margin, legacy):
    """Loss and grad of a, following contrastive_loss_layer.cpp's formulas (float64)."""
    num = a.shape[0]
    diff = (a - b).reshape(num, -1).astype(np.float64)
    loss, grad = 0.0, np.zeros_like(diff)
    for i in range(num):
        d2 = (diff[i] ** 2).sum()
        if int(y[i]):
            loss += d2
            grad[i] = diff[i] / num
        elif legacy:
            loss += max(margin - d2, 0)
            grad[i] = -diff[i] / num if margin - d2 > 0 else 0
        else:
            d = np.sqrt(d2)
            loss += max(margin - d, 0) ** 2
            grad[i] = -(margin - d) / (d + 1e-4) * diff[i] / num if margin - d > 0 else 0
    return loss / num / 2, grad.reshape(a.shape)


def run(params, a, b, y):
    module = build(text(params), [a.shape, b.shape, y.shape])
    at = torch.tensor(a, requires_grad=True)
    bt = torch.tensor(b, requires_grad=True)
    loss = module(at, bt, torch.tensor(y))
    loss.backward()
    return loss, at.grad.numpy(), bt.grad.numpy()


@golden_params("ContrastiveLoss")
def test_golden(case_dir):
    run_golden(case_dir)


@pytest.mark.parametrize(
    ("params", "margin", "legacy"),
    [("", 1.0, False), ("margin: 2.5", 2.5, False), ("margin: 3 legacy_version: true", 3.0, True)],
    ids=["default", "margin", "legacy"],
)
def test_matches_caffe_formulas(params, margin, legacy):
    rng = np.random.default_rng(11)
    a = rng.normal(size=(8, 3, 1, 1)).astype(np.float32) * 0.7
    b = rng.normal(size=(8, 3, 1, 1)).astype(np.float32) * 0.7
    y = np.array([1, 0, 0, 1, 0, 0, 1, 0], np.float32).reshape(8, 1, 1, 1)
    loss, ga, gb = run(params, a, b, y)
    want, want_grad = reference(a, b, y.reshape(-1), margin, legacy)
    assert loss.shape == ()
    np.testing.assert_allclose(loss.item(), want, rtol=1e-5)
    np.testing.assert_allclose(ga, want_grad, rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(gb, -want_grad, rtol=1e-4, atol=1e-7)


def test_gradient_differs_from_autograd_by_the_epsilon():
    # Caffe divides by d + 1e-4: for a small distance the gradient is visibly smaller.
    a = np.array([[1e-3, 0.0]], np.float32)
    b = np.zeros((1, 2), np.float32)
    _, ga, _ = run("", a, b, np.array([0.0], np.float32))
    d = 1e-3
    np.testing.assert_allclose(ga[0, 0], -(1 - d) / (d + 1e-4) * d, rtol=1e-4)


def test_beyond_margin_gives_zero_gradient():
    a = np.array([[3.0, 0.0]], np.float32)
    loss, ga, gb = run("", a, np.zeros_like(a), np.array([0.0], np.float32))
    assert loss.item() == 0 and not ga.any() and not gb.any()


def test_two_dimensional_inputs_and_float_labels():
    a = np.ones((2, 2), np.float32)
    loss, _, _ = run("", a, np.zeros_like(a), np.array([0.7, 1.0], np.float32))
    # int(0.7) == 0: dissimilar; d = sqrt(2) > margin 1 -> 0. The second pair: d^2 = 2.
    assert loss.item() == pytest.approx(2 / 2 / 2)


def test_spatial_features_are_a_build_error():
    with pytest.raises(BuildError):
        build(text(), [(2, 3, 2, 2), (2, 3, 2, 2), (2,)])


def test_alias():
    assert find_layer_spec("CONTRASTIVE_LOSS").type == "ContrastiveLoss"
