"""HingeLoss: L1 and L2 norms, label entry sign-flipped, divided by N."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from caffe2torch.layers.registry import find_layer_spec
from tests.layers.helpers_core import build, golden_params, run_golden


def reference(x, labels, squared):
    num = x.shape[0]
    flat = x.reshape(num, -1).astype(np.float64)
    t = flat.copy()
    for i, lab in enumerate(labels.astype(int)):
        t[i, lab] *= -1
    margin = np.maximum(0, 1 + t)
    sign = np.where(np.arange(flat.shape[1])[None, :] == labels.astype(int)[:, None], -1, 1)
    if squared:
        return (margin**2).sum() / num, (2 * margin * sign / num).reshape(x.shape)
    return margin.sum() / num, ((margin > 0) * sign / num).reshape(x.shape)


@golden_params("HingeLoss")
def test_golden(case_dir):
    run_golden(case_dir)


@pytest.mark.parametrize("norm", ["L1", "L2"])
def test_matches_reference(norm):
    rng = np.random.default_rng(5)
    x = rng.normal(size=(6, 4)).astype(np.float32)
    labels = rng.integers(0, 4, size=(6,)).astype(np.float32)
    text = f'type: "HingeLoss" bottom: "x" bottom: "y" top: "l" hinge_loss_param {{ norm: {norm} }}'
    module = build(text, [x.shape, labels.shape])
    xt = torch.tensor(x, requires_grad=True)
    loss = module(xt, torch.tensor(labels))
    loss.backward()
    want, want_grad = reference(x, labels, norm == "L2")
    np.testing.assert_allclose(loss.item(), want, rtol=1e-6)
    np.testing.assert_allclose(xt.grad.numpy(), want_grad, rtol=1e-5, atol=1e-7)


def test_zero_gradient_on_the_kink():
    # 1 + x == 0 exactly for a non-label entry: max(0, .) is 0, Caffe's sign(0) gives 0.
    module = build('type: "HingeLoss" bottom: "x" bottom: "y" top: "l"', [(1, 2), (1,)])
    x = torch.tensor([[0.5, -1.0]], requires_grad=True)
    module(x, torch.tensor([0.0])).backward()
    torch.testing.assert_close(x.grad, torch.tensor([[-1.0, 0.0]]))


def test_alias():
    assert find_layer_spec("HINGE_LOSS").type == "HingeLoss"
