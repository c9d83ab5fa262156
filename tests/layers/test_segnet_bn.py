"""SegNet's BN (alexgkendall/caffe-segnet bn_layer.cpp), recognised by bn_mode /
scale_filler / shift_filler: LEARN normalises with the batch's E[x] and E[x^2] - E[x]^2
(over H, W then N) and eps 1e-9 in every phase; INFERENCE is scale * x + shift."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from tests.layers.fork_net import build_fork_layer

LAYER = ('name: "bn" type: "BN" bottom: "x" top: "y" {tops} bn_param {{ {mode} '
         'scale_filler {{ type: "gaussian" std: 1 }} shift_filler {{ type: "gaussian" std: 1 }} }}')


def _reference_learn(x: np.ndarray, scale: np.ndarray, shift: np.ndarray):
    x64 = x.astype(np.float64)
    mean = x64.mean(axis=(2, 3)).mean(axis=0)
    var = (x64 * x64).mean(axis=(2, 3)).mean(axis=0) - mean * mean
    norm = (x64 - mean[None, :, None, None]) / np.sqrt(var + 1e-9)[None, :, None, None]
    return norm * scale.reshape(1, -1, 1, 1) + shift.reshape(1, -1, 1, 1), mean, var


@pytest.mark.parametrize("phase", ["TRAIN", "TEST"])
def test_learn_mode_uses_the_batch_in_every_phase(tmp_path: Path, phase: str) -> None:
    _, layer = build_fork_layer(tmp_path, LAYER.format(tops="", mode="bn_mode: LEARN"),
                                (3, 2, 4, 5), phase=phase)
    scale, shift = (b.detach().numpy() for b in layer.blobs)
    assert scale.shape == shift.shape == (1, 2, 1, 1)
    rng = np.random.default_rng(0)
    x = rng.normal(2.0, 3.0, size=(3, 2, 4, 5)).astype(np.float32)
    xt = torch.from_numpy(x).requires_grad_()
    y = layer(xt)
    ref, _, _ = _reference_learn(x, scale, shift)
    np.testing.assert_allclose(y.detach().numpy(), ref, rtol=1e-4, atol=1e-4)
    # backward: the derivative of the forward above (finite differences of the reference)
    dy = rng.normal(size=x.shape)
    y.backward(torch.from_numpy(dy.astype(np.float32)))
    eps = 1e-3
    grad = np.zeros_like(x, np.float64)
    for idx in [(0, 0, 0, 0), (1, 1, 2, 3), (2, 0, 3, 4), (0, 1, 1, 1)]:
        plus, minus = x.astype(np.float64), x.astype(np.float64)
        plus[idx] += eps
        minus[idx] -= eps
        grad[idx] = ((_reference_learn(plus, scale, shift)[0] -
                      _reference_learn(minus, scale, shift)[0]) * dy).sum() / (2 * eps)
        assert xt.grad.numpy()[idx] == pytest.approx(grad[idx], rel=2e-3, abs=2e-3)
    norm = (ref - shift.reshape(1, -1, 1, 1)) / scale.reshape(1, -1, 1, 1)
    np.testing.assert_allclose(layer.blobs[0].grad.numpy().ravel(),
                               (dy * norm).sum(axis=(0, 2, 3)), rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(layer.blobs[1].grad.numpy().ravel(), dy.sum(axis=(0, 2, 3)),
                               rtol=1e-4, atol=1e-4)


def test_learn_mode_statistics_tops(tmp_path: Path) -> None:
    _, layer = build_fork_layer(
        tmp_path, LAYER.format(tops='top: "mean" top: "var"', mode=""), (2, 3, 2, 2))
    x = np.random.default_rng(1).normal(size=(2, 3, 2, 2)).astype(np.float32)
    _, mean, var = layer(torch.from_numpy(x))
    _, ref_mean, ref_var = _reference_learn(x, *(b.detach().numpy() for b in layer.blobs))
    np.testing.assert_allclose(mean.numpy().ravel(), ref_mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(var.numpy().ravel(), ref_var, rtol=1e-4, atol=1e-5)


def test_inference_mode_is_scale_and_shift(tmp_path: Path) -> None:
    _, layer = build_fork_layer(tmp_path, LAYER.format(tops="", mode="bn_mode: INFERENCE"),
                                (2, 3, 2, 2))
    scale, shift = (b.detach().numpy() for b in layer.blobs)
    x = np.random.default_rng(2).normal(size=(2, 3, 2, 2)).astype(np.float32)
    xt = torch.from_numpy(x).requires_grad_()
    y = layer(xt)
    np.testing.assert_array_equal(y.detach().numpy(), scale * x + shift)
    dy = np.ones_like(x)
    y.backward(torch.from_numpy(dy))
    np.testing.assert_array_equal(xt.grad.numpy(), np.broadcast_to(scale, x.shape))


def test_pspnet_bn_is_unchanged(tmp_path: Path) -> None:
    _, layer = build_fork_layer(tmp_path, 'name: "bn" type: "BN" bottom: "x" top: "y"',
                                (2, 3, 2, 2))
    assert len(layer.blobs) == 4  # slope, bias, mean, variance


def test_fork_proto_gives_bn_mode_typed(tmp_path: Path) -> None:
    import caffe2torch as c2t

    fork = Path(__file__).resolve().parents[1] / "fixtures" / "fork_proto" / "fork.proto"
    path = tmp_path / "net.prototxt"
    path.write_text('input: "x"\ninput_dim: 2 input_dim: 3 input_dim: 2 input_dim: 2\n'
                    f"layer {{ {LAYER.format(tops='', mode='bn_mode: INFERENCE')} }}\n")
    net = c2t.load_net(path, proto=fork)
    assert net.module("bn").inference
