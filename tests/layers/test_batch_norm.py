"""BatchNorm: global vs batch statistics by phase, scale-factor blob, running averages."""

import numpy as np
import pytest
import torch

from caffe2torch.errors import BuildError
from tests.layers.helpers_core import build, golden_params, run_golden, top_shapes


@golden_params("BatchNorm")
def test_golden(case_dir):
    run_golden(case_dir)


def _bn(params, shape, phase="TEST", extra=""):
    return build(
        f'name: "bn" type: "BatchNorm" bottom: "x" top: "y" {extra}batch_norm_param {{ {params} }}',
        [shape],
        phase=phase,
    )


def _set(module, mean, var, factor):
    with torch.no_grad():
        for blob, value in zip(module.blobs, (mean, var, [factor])):
            blob.copy_(torch.tensor(value, dtype=torch.float32))


def test_blobs_are_zero_and_never_learned():
    module = _bn("", (2, 3, 4, 4))
    assert [tuple(b.shape) for b in module.blobs] == [(3,), (3,), (1,)]
    assert all(not b.requires_grad and float(b.abs().sum()) == 0 for b in module.blobs)
    x = torch.randn(2, 3, 4, 4, requires_grad=True)
    module(x).sum().backward()
    assert all(b.grad is None for b in module.blobs)


@pytest.mark.parametrize("factor", [4.0, 0.0])
def test_global_stats_divide_by_the_scale_factor(factor):
    module = _bn("eps: 0.01", (2, 3, 2, 2))
    mean, var = np.array([0.4, -0.8, 1.2]), np.array([2.0, 4.0, 0.8])
    _set(module, mean, var, factor)
    x = np.random.default_rng(0).normal(size=(2, 3, 2, 2)).astype(np.float32)
    scale = 0.0 if factor == 0 else 1.0 / factor
    eps = np.float32(0.01)
    want = (x - (mean * scale).reshape(1, 3, 1, 1)) / np.sqrt(var * scale + eps).reshape(1, 3, 1, 1)
    np.testing.assert_allclose(module(torch.tensor(x)).numpy(), want, rtol=1e-5, atol=1e-6)


def _batch_reference(x, eps):
    axes = tuple(d for d in range(x.ndim) if d != 1)
    mean = x.mean(axis=axes, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=axes, keepdims=True)
    return (x - mean) / np.sqrt(var + eps), mean.ravel(), var.ravel()


@pytest.mark.parametrize("phase,params", [("TRAIN", ""), ("TEST", "use_global_stats: false")])
def test_batch_stats_and_running_average(phase, params):
    module = _bn(params + " moving_average_fraction: 0.9", (4, 3, 2, 5), phase=phase)
    _set(module, [1.0, 2.0, 3.0], [0.5, 0.5, 0.5], 2.0)
    x = np.random.default_rng(1).normal(1.0, 2.0, size=(4, 3, 2, 5)).astype(np.float64)
    y = module(torch.tensor(x, dtype=torch.float32))
    want, mean, var = _batch_reference(x, 1e-5)
    np.testing.assert_allclose(y.numpy(), want, rtol=1e-4, atol=1e-5)
    m = 4 * 2 * 5
    np.testing.assert_allclose(module.blobs[2].numpy(), [0.9 * 2.0 + 1], rtol=1e-6)
    np.testing.assert_allclose(
        module.blobs[0].numpy(), 0.9 * np.array([1.0, 2, 3]) + mean, rtol=1e-5
    )
    np.testing.assert_allclose(module.blobs[1].numpy(), 0.45 + m / (m - 1) * var, rtol=1e-5)


def test_explicit_use_global_stats_wins_in_train():
    module = _bn("use_global_stats: true", (2, 2), phase="TRAIN")
    _set(module, [1.0, -1.0], [4.0, 1.0], 1.0)
    y = module(torch.tensor([[3.0, 0.0], [1.0, -1.0]]))
    torch.testing.assert_close(
        y,
        torch.tensor([[2.0, 1.0], [0.0, 0.0]]) / torch.sqrt(torch.tensor([4.0, 1.0]) + 1e-5),
        rtol=1e-5,
        atol=1e-6,
    )
    assert module.blobs[2].item() == 1.0  # no running-average update


def test_phase_switch_follows_module_training():
    module = _bn("", (3, 2))
    x = torch.tensor([[1.0, 2.0], [3.0, 5.0], [5.0, 8.0]])
    module.train(True)
    y = module(x)
    torch.testing.assert_close(y.mean(0), torch.zeros(2), atol=1e-6, rtol=0)
    module.eval()
    z = module(x)  # global stats: blobs now hold one update of the batch statistics
    mean = x.mean(0)
    var = x.var(0)  # unbiased, as stored
    torch.testing.assert_close(z, (x - mean) / torch.sqrt(var + 1e-5), rtol=1e-5, atol=1e-6)


def test_one_value_per_channel_uses_correction_one():
    module = _bn("", (1, 3), phase="TRAIN")
    y = module(torch.tensor([[1.0, 2.0, 3.0]]))
    torch.testing.assert_close(y, torch.zeros(1, 3))
    torch.testing.assert_close(module.blobs[1].detach(), torch.zeros(3))
    torch.testing.assert_close(module.blobs[0].detach(), torch.tensor([1.0, 2.0, 3.0]))


def test_batch_mode_gradient_is_caffes_formula():
    module = _bn("", (3, 2, 4), phase="TRAIN")
    x = torch.randn(3, 2, 4, dtype=torch.float64, requires_grad=True)
    module.double()
    dy = torch.randn(3, 2, 4, dtype=torch.float64)
    y = module(x)
    y.backward(dy)
    axes = (0, 2)
    std = torch.sqrt(x.detach().var(dim=axes, correction=0, keepdim=True) + 1e-5)
    y = y.detach()
    want = (dy - dy.mean(axes, keepdim=True) - (dy * y).mean(axes, keepdim=True) * y) / std
    torch.testing.assert_close(x.grad, want)


def test_shape_inference_does_not_touch_the_blobs():
    module = _bn("", (2, 3, 4), phase="TRAIN")
    assert top_shapes(module, [(2, 3, 4)]) == [(2, 3, 4)]
    assert module.blobs[2].item() == 0.0


def test_learned_statistics_are_refused():
    with pytest.raises(BuildError, match="lr_mult"):
        _bn("", (2, 3), extra="param { lr_mult: 1 } ")
    _bn("", (2, 3), extra="param { lr_mult: 0 } param { lr_mult: 0 } param { lr_mult: 0 } ")


def test_global_statistics_follow_every_change_of_the_blobs() -> None:
    """The TEST-phase statistics are reused between forwards, but never stale: an in-place
    write, a new storage (``.data =``) and a TRAIN-mode update all show at once."""
    from caffe2torch.layers.bvlc.normalization import CaffeBatchNorm

    bn = CaffeBatchNorm(2, 1e-5, 0.999, None).eval()
    x = torch.randn(3, 2, 4)
    with torch.no_grad():
        for b, v in zip(bn.blobs, ([1.0, 2.0], [4.0, 9.0], [2.0])):
            b.copy_(torch.tensor(v))

    def expect(mean: list[float], var: list[float]) -> None:
        m, v = torch.tensor(mean)[None, :, None], torch.tensor(var)[None, :, None]
        torch.testing.assert_close(bn(x), (x - m) / torch.sqrt(v + 1e-5))

    expect([0.5, 1.0], [2.0, 4.5])
    expect([0.5, 1.0], [2.0, 4.5])  # from the cache
    with torch.no_grad():
        bn.blobs[2].fill_(1.0)
    expect([1.0, 2.0], [4.0, 9.0])
    bn.blobs[0].data = torch.tensor([0.0, 0.0])
    expect([0.0, 0.0], [4.0, 9.0])
    bn.train()
    bn(x)  # batch statistics, accumulated into the blobs
    bn.eval()
    mean, var = bn._global_stats()
    factor = float(bn.blobs[2])
    torch.testing.assert_close(mean, bn.blobs[0].detach() / factor)
    torch.testing.assert_close(var, bn.blobs[1].detach() / factor)
