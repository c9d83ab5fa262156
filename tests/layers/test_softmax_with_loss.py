"""SoftmaxWithLoss: normalization modes, ignore_label, axis, FLT_MIN clamp, prob top."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from caffe2torch.errors import BuildError
from caffe2torch.layers.registry import find_layer_spec
from tests.layers.helpers_core import build, golden_params, run_golden, top_shapes

FLT_MIN = float(np.finfo(np.float32).tiny)


def reference(logits, labels, axis, ignore, mode):
    """Loss and logits gradient (loss weight 1), computed with explicit loops in float64."""
    x = logits.astype(np.float64)
    x = np.moveaxis(x, axis, -1)
    p = np.exp(x - x.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    outer = int(np.prod(logits.shape[:axis]))
    flat_p = p.reshape(-1, p.shape[-1])
    flat_l = labels.reshape(-1).astype(int)
    grad = flat_p.copy()
    loss, count = 0.0, 0
    for k, lab in enumerate(flat_l):
        if ignore is not None and lab == ignore:
            grad[k] = 0
            continue
        loss -= np.log(max(flat_p[k, lab], FLT_MIN))
        grad[k, lab] -= 1
        count += 1
    norm = {"FULL": flat_l.size, "VALID": count, "BATCH_SIZE": outer, "NONE": 1}[mode]
    norm = max(1, norm)
    grad = np.moveaxis(grad.reshape(p.shape) / norm, -1, axis)
    return loss / norm, grad


def run(text, logits, labels):
    module = build(text, [logits.shape, labels.shape])
    x = torch.tensor(logits, requires_grad=True)
    out = module(x, torch.tensor(labels))
    loss = out[0] if isinstance(out, tuple) else out
    loss.backward()
    return out, x.grad.numpy()


@golden_params("SoftmaxWithLoss")
def test_golden(case_dir):
    run_golden(case_dir)


CASES = {
    "valid_default": ("", None, "VALID", 1),
    "full_ignore": ("loss_param { ignore_label: 1 normalization: FULL }", 1, "FULL", 1),
    "valid_ignore": ("loss_param { ignore_label: 1 }", 1, "VALID", 1),
    "batch_size": ("loss_param { normalization: BATCH_SIZE }", None, "BATCH_SIZE", 1),
    "none": ("loss_param { normalization: NONE ignore_label: 0 }", 0, "NONE", 1),
    "legacy_normalize_true": ("loss_param { normalize: true }", None, "VALID", 1),
    "legacy_normalize_false": ("loss_param { normalize: false }", None, "BATCH_SIZE", 1),
    "normalization_wins": (
        "loss_param { normalize: false normalization: FULL }", None, "FULL", 1),
    "axis2": ("softmax_param { axis: 2 }", None, "VALID", 2),
    "axis_neg1": ("softmax_param { axis: -1 }", None, "VALID", 3),
}


@pytest.mark.parametrize("key", list(CASES))
def test_matches_loop_reference(key):
    extra, ignore, mode, axis = CASES[key]
    rng = np.random.default_rng(7)
    logits = rng.normal(size=(3, 4, 2, 5)).astype(np.float32)
    label_shape = tuple(d for i, d in enumerate(logits.shape) if i != axis)
    labels = rng.integers(0, logits.shape[axis], size=label_shape).astype(np.float32)
    text = f'type: "SoftmaxWithLoss" bottom: "x" bottom: "y" top: "loss" {extra}'
    loss, grad = run(text, logits, labels)
    want_loss, want_grad = reference(logits, labels, axis, ignore, mode)
    assert loss.shape == ()
    np.testing.assert_allclose(loss.item(), want_loss, rtol=1e-5)
    np.testing.assert_allclose(grad, want_grad, rtol=1e-4, atol=1e-7)


def test_flt_min_clamp_keeps_caffe_gradient():
    # p[label] underflows to 0: Caffe's loss is -log(FLT_MIN) and its gradient still p - 1.
    logits = np.array([[0.0, 200.0], [0.0, 0.0]], np.float32)
    labels = np.array([0.0, 1.0], np.float32)
    loss, grad = run('type: "SoftmaxWithLoss" bottom: "x" bottom: "y" top: "l"', logits, labels)
    np.testing.assert_allclose(loss.item(), (-np.log(FLT_MIN) + np.log(2)) / 2, rtol=1e-6)
    np.testing.assert_allclose(grad, [[-0.5, 0.5], [0.25, -0.25]], atol=1e-7)


def test_label_truncates_like_static_cast():
    logits = np.random.default_rng(0).normal(size=(2, 3)).astype(np.float32)
    a, _ = run('type: "SoftmaxWithLoss" bottom: "x" bottom: "y" top: "l"', logits,
               np.array([1.9, 2.0], np.float32))
    b, _ = run('type: "SoftmaxWithLoss" bottom: "x" bottom: "y" top: "l"', logits,
               np.array([1.0, 2.0], np.float32))
    assert a.item() == b.item()


def test_all_ignored_gives_zero_and_normalizer_one():
    logits = np.ones((2, 3), np.float32)
    labels = np.full((2,), 2.0, np.float32)
    loss, grad = run(
        'type: "SoftmaxWithLoss" bottom: "x" bottom: "y" top: "l" loss_param { ignore_label: 2 }',
        logits, labels)
    assert loss.item() == 0.0
    assert not grad.any()


def test_prob_top_is_softmax_without_gradient():
    text = 'type: "SoftmaxWithLoss" bottom: "x" bottom: "y" top: "loss" top: "prob"'
    logits = torch.randn(4, 3, 2, requires_grad=True)
    labels = torch.randint(0, 3, (4, 2)).float()
    module = build(text, [logits.shape, labels.shape])
    loss, prob = module(logits, labels)
    torch.testing.assert_close(prob, torch.softmax(logits, 1).detach())
    assert not prob.requires_grad
    assert loss.requires_grad
    assert top_shapes(module, [(4, 3, 2), (4, 2)]) == [(), (4, 3, 2)]


def test_labels_never_get_gradient():
    module = build('type: "SoftmaxWithLoss" bottom: "x" bottom: "y" top: "l"', [(2, 3), (2,)])
    labels = torch.tensor([0.0, 1.0], requires_grad=True)
    module(torch.randn(2, 3, requires_grad=True), labels).backward()
    assert labels.grad is None


def test_label_count_mismatch_is_a_build_error():
    with pytest.raises(BuildError, match="labels"):
        build('type: "SoftmaxWithLoss" bottom: "x" bottom: "y" top: "l"', [(2, 3, 4), (2,)])


@pytest.mark.parametrize("alias", ["SOFTMAX_LOSS", "softmax_loss"])
def test_aliases(alias):
    spec = find_layer_spec(alias)
    assert spec is not None and spec.type == "SoftmaxWithLoss" and spec.loss


def test_rfcn_third_top_is_the_per_item_loss() -> None:
    # daijifeng001/caffe-rfcn's SoftmaxWithLoss (MaxTopBlobs 3): top 2 is the per-item
    # loss -log(max(p_label, FLT_MIN)) in the label's shape, as SoftmaxWithLossOHEM
    layer = build('name: "l" type: "SoftmaxWithLoss" bottom: "s" bottom: "y" '
                        'top: "loss" top: "prob" top: "per_item"', [(4, 3), (4,)])
    logits = torch.tensor(np.random.default_rng(0).normal(size=(4, 3)), dtype=torch.float32)
    labels = torch.tensor([0.0, 2.0, 1.0, 2.0])
    loss, prob, per_item = layer(logits, labels)
    want = -torch.log(prob[torch.arange(4), labels.long()])
    torch.testing.assert_close(per_item.reshape(-1), want)
    torch.testing.assert_close(loss, want.mean())


def test_segnet_class_weighting(tmp_path) -> None:
    # alexgkendall/caffe-segnet softmax_loss_layer.cpp: loss -= log(max(p, FLT_MIN)) *
    # w[label]; diff = (p - 1[label]) * w[label]; normalize -> / non-ignored count
    text = ('name: "l" type: "SoftmaxWithLoss" bottom: "x" bottom: "y" top: "loss" '
            "loss_param { weight_by_label_freqs: true class_weighting: 0.5 "
            "class_weighting: 2 class_weighting: 1 ignore_label: 255 }")
    path = tmp_path / "net.prototxt"
    path.write_text('input: "x" input_shape { dim: 2 dim: 3 dim: 2 dim: 2 }\n'
                    'input: "y" input_shape { dim: 2 dim: 1 dim: 2 dim: 2 }\n'
                    f"layer {{ {text} }}\n")
    import caffe2torch as c2t

    net = c2t.load_net(path)
    layer = net.module("l")
    rng = np.random.default_rng(5)
    x = torch.tensor(rng.normal(size=(2, 3, 2, 2)), dtype=torch.float32, requires_grad=True)
    y = torch.tensor([[[[0, 1], [2, 255]]], [[[1, 1], [0, 2]]]], dtype=torch.float32)
    loss = layer(x, y)
    p = torch.softmax(x.detach(), dim=1).numpy()
    w = np.array([0.5, 2.0, 1.0])
    lab = y.numpy().astype(int)[:, 0]
    total, count, diff = 0.0, 0, np.zeros_like(p)
    for n in range(2):
        for i in range(2):
            for j in range(2):
                c = lab[n, i, j]
                if c == 255:
                    continue
                total -= np.log(p[n, c, i, j]) * w[c]
                diff[n, :, i, j] = p[n, :, i, j] * w[c]
                diff[n, c, i, j] -= w[c]
                count += 1
    assert float(loss) == pytest.approx(total / count, rel=1e-5)
    loss.backward()
    np.testing.assert_allclose(x.grad.numpy(), diff / count, rtol=1e-5, atol=1e-6)
