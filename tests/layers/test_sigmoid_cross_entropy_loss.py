"""SigmoidCrossEntropyLoss: BATCH_SIZE by default, ignore_label, Caffe's gradient."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from caffe2torch.errors import BuildError
from caffe2torch.layers.registry import find_layer_spec
from tests.layers.helpers_core import build, golden_params, run_golden

TEXT = 'type: "SigmoidCrossEntropyLoss" bottom: "x" bottom: "t" top: "loss" '


def reference(x, t, ignore, mode):
    x64, t64 = x.astype(np.float64), t.astype(np.float64)
    valid = np.ones(x.shape, bool) if ignore is None else t.astype(int) != ignore
    terms = np.log1p(np.exp(-np.abs(x64))) + np.maximum(x64, 0) - x64 * t64
    norm = {"FULL": x.size, "VALID": valid.sum(), "BATCH_SIZE": x.shape[0], "NONE": 1}[mode]
    norm = max(1, norm)
    grad = (1 / (1 + np.exp(-x64)) - t64) * valid / norm
    return (terms * valid).sum() / norm, grad


@golden_params("SigmoidCrossEntropyLoss")
def test_golden(case_dir):
    run_golden(case_dir)


@pytest.mark.parametrize(
    ("extra", "ignore", "mode"),
    [
        ("", None, "BATCH_SIZE"),
        ("loss_param { normalization: FULL }", None, "FULL"),
        ("loss_param { normalization: VALID ignore_label: -1 }", -1, "VALID"),
        ("loss_param { normalize: true ignore_label: -1 }", -1, "VALID"),
        ("loss_param { normalize: false }", None, "BATCH_SIZE"),
        ("loss_param { normalization: NONE }", None, "NONE"),
    ],
    ids=["default", "full", "valid_ignore", "legacy_true", "legacy_false", "none"],
)
def test_matches_reference(extra, ignore, mode):
    rng = np.random.default_rng(3)
    x = (rng.normal(size=(4, 3, 2)) * 4).astype(np.float32)
    t = rng.uniform(size=(4, 3, 2)).astype(np.float32)
    if ignore is not None:
        t[rng.uniform(size=t.shape) < 0.3] = ignore
    module = build(TEXT + extra, [x.shape, t.shape])
    xt = torch.tensor(x, requires_grad=True)
    loss = module(xt, torch.tensor(t))
    loss.backward()
    want, want_grad = reference(x, t, ignore, mode)
    assert loss.shape == ()
    np.testing.assert_allclose(loss.item(), want, rtol=1e-5)
    np.testing.assert_allclose(xt.grad.numpy(), want_grad, rtol=1e-4, atol=1e-7)


def test_large_logits_stay_finite():
    x = torch.tensor([[200.0, -200.0]], requires_grad=True)
    module = build(TEXT, [(1, 2), (1, 2)])
    loss = module(x, torch.tensor([[0.0, 1.0]]))
    loss.backward()
    assert loss.item() == pytest.approx(400.0)
    torch.testing.assert_close(x.grad, torch.tensor([[1.0, -1.0]]))


def test_target_shape_may_differ_with_same_count():
    module = build(TEXT, [(2, 3), (2, 3, 1, 1)])
    assert module(torch.zeros(2, 3), torch.ones(2, 3, 1, 1)).item() == pytest.approx(
        6 * np.log(2) / 2)


def test_count_mismatch_is_a_build_error():
    with pytest.raises(BuildError, match="same count"):
        build(TEXT, [(2, 3), (2, 4)])


def test_alias():
    assert find_layer_spec("SIGMOID_CROSS_ENTROPY_LOSS").type == "SigmoidCrossEntropyLoss"
