"""BN (PSPNet): batch norm with its own slope and bias; 4 blobs (slope, bias, mean, var)."""

import numpy as np
import pytest
import torch

from tests.layers.helpers_core import build

F = np.float32


def bn_forward_ref(x, slope, bias, mean, var, eps, use_stats):
    """BNLayer::Forward_cpu: returns top, x_norm, inv_std, batch mean, batch var."""
    if use_stats:
        mu, sigma2 = mean, var
    else:
        mu = x.mean(axis=(2, 3)).mean(axis=0)
        sigma2 = ((x - mu[None, :, None, None]) ** 2).mean(axis=(2, 3)).mean(axis=0)
    inv_std = (sigma2 + eps) ** -0.5
    x_norm = (x - mu[None, :, None, None]) * inv_std[None, :, None, None]
    top = x_norm * slope[None, :, None, None] + bias[None, :, None, None]
    return top, x_norm, inv_std, mu, sigma2


def bn_backward_ref(dy, x_norm, inv_std, slope):
    """BNLayer::Backward_cpu (not frozen): slope, bias and bottom diffs."""
    m = dy.shape[0] * dy.shape[2] * dy.shape[3]
    slope_diff = (x_norm * dy).sum(axis=(0, 2, 3))
    bias_diff = dy.sum(axis=(0, 2, 3))
    dxhat = dy * slope[None, :, None, None]
    s1 = (x_norm * dxhat).sum(axis=(0, 2, 3))[None, :, None, None]
    s2 = dxhat.sum(axis=(0, 2, 3))[None, :, None, None]
    bottom = (dxhat - (x_norm * s1 + s2) / m) * inv_std[None, :, None, None]
    return slope_diff, bias_diff, bottom


def make(frozen, phase, momentum=0.9):
    text = f"""name: "bn" type: "BN" bottom: "x" top: "x"
      bn_param {{ slope_filler {{ type: "constant" value: 1 }}
                  bias_filler {{ type: "constant" value: 0 }}
                  frozen: {str(frozen).lower()} momentum: {momentum} }}"""
    return build(text, [(3, 4, 5, 6)], phase=phase)


def set_blobs(layer, rng):
    values = [
        rng.uniform(0.5, 1.5, 4),
        rng.normal(size=4),
        rng.normal(size=4),
        rng.uniform(0.5, 2.0, 4),
    ]
    with torch.no_grad():
        for blob, v in zip(layer.blobs, values):
            blob.copy_(torch.from_numpy(v.astype(F)).reshape(1, 4, 1, 1))
    return [v.astype(np.float64) for v in values]


@pytest.mark.parametrize(
    ("frozen", "phase"),
    [(True, "TRAIN"), (True, "TEST"), (False, "TEST"), (False, "TRAIN")],
    ids=["frozen_train", "frozen_test", "test", "train"],
)
def test_forward_and_backward_match_the_fork(frozen, phase):
    layer = make(frozen, phase)
    rng = np.random.default_rng(4)
    slope, bias, mean, var = set_blobs(layer, rng)
    x = rng.normal(1.0, 2.0, size=(3, 4, 5, 6)).astype(F)
    dy = rng.normal(size=x.shape).astype(F)
    use_stats = frozen or phase == "TEST"
    top, x_norm, inv_std, mu, sigma2 = bn_forward_ref(
        x.astype(np.float64), slope, bias, mean, var, 1e-5, use_stats
    )
    xt = torch.from_numpy(x).requires_grad_()
    y = layer(xt)
    np.testing.assert_allclose(y.detach().numpy(), top, rtol=1e-5, atol=1e-5)
    y.backward(torch.from_numpy(dy))
    if frozen:
        # Frozen: dx = dy * slope / std; no parameter gradients.
        np.testing.assert_allclose(
            xt.grad.numpy(), dy * (slope * inv_std)[None, :, None, None], rtol=1e-5
        )
        assert all(not b.requires_grad for b in layer.blobs)
        return
    if phase == "TRAIN":
        sd, bd, xd = bn_backward_ref(dy.astype(np.float64), x_norm, inv_std, slope)
        np.testing.assert_allclose(
            layer.blobs[0].grad.numpy().reshape(-1), sd, rtol=1e-4, atol=1e-4
        )
        np.testing.assert_allclose(
            layer.blobs[1].grad.numpy().reshape(-1), bd, rtol=1e-5, atol=1e-4
        )
        np.testing.assert_allclose(xt.grad.numpy(), xd, rtol=1e-4, atol=1e-5)
        # Moving averages: (1 - m) * batch + m * stored, with the biased batch variance.
        np.testing.assert_allclose(
            layer.blobs[2].detach().numpy().reshape(-1), 0.1 * mu + 0.9 * mean, rtol=1e-5, atol=1e-6
        )
        np.testing.assert_allclose(
            layer.blobs[3].detach().numpy().reshape(-1), 0.1 * sigma2 + 0.9 * var, rtol=1e-5
        )


def test_blobs_and_defaults():
    layer = build(
        'name: "bn" type: "BN" bottom: "x" top: "y" bn_param { frozen: true }', [(1, 3, 2, 2)]
    )
    shapes = [tuple(b.shape) for b in layer.blobs]
    assert shapes == [(1, 3, 1, 1)] * 4
    # Default fillers are constant 0; frozen starts the variance at 1.
    assert float(layer.blobs[0].abs().sum()) == 0.0
    assert torch.all(layer.blobs[3] == 1.0)
    torch.testing.assert_close(layer(torch.ones(1, 3, 2, 2)), torch.zeros(1, 3, 2, 2))


@pytest.mark.parametrize("phase", ["TRAIN", "TEST"])
def test_a_2d_bottom_counts_height_and_width_as_1(phase):
    # dgd_person_reid puts BN after an InnerProduct: the fork's legacy height() and
    # width() are 1 for an (N, C) blob, so the statistics are over N alone.
    text = ('name: "bn" type: "BN" bottom: "x" top: "y" '
            'bn_param { slope_filler { type: "constant" value: 1 } }')
    layer = build(text, [(6, 4)], phase=phase)
    assert [tuple(b.shape) for b in layer.blobs] == [(1, 4)] * 4
    rng = np.random.default_rng(7)
    values = [rng.uniform(0.5, 1.5, 4), rng.normal(size=4), rng.normal(size=4),
              rng.uniform(0.5, 2.0, 4)]
    with torch.no_grad():
        for blob, v in zip(layer.blobs, values):
            blob.copy_(torch.from_numpy(v.astype(F)).reshape(1, 4))
    x = rng.normal(1.0, 2.0, size=(6, 4)).astype(F)
    top, *_ = bn_forward_ref(x[:, :, None, None].astype(np.float64),
                             *[v.astype(np.float64) for v in values], 1e-5, phase == "TEST")
    y = layer(torch.from_numpy(x))
    assert tuple(y.shape) == (6, 4)
    np.testing.assert_allclose(y.detach().numpy(), top[:, :, 0, 0], rtol=1e-5, atol=1e-5)


def test_more_than_4_axes_is_refused_with_the_shape():
    with pytest.raises(Exception, match=r"2 to 4 axes .*\(1, 2, 3, 4, 5\)"):
        build('name: "bn" type: "BN" bottom: "x" top: "y"', [(1, 2, 3, 4, 5)])


def test_weights_saved_as_1_by_c_load_into_a_4d_bn(tmp_path):
    # yjxiong/caffe (TSN) and Cysu/caffe save every BN blob as (1, C); PSPNet's as
    # (1, C, 1, 1): both load.
    import caffe2torch as c2t
    from caffe2torch.proto import caffe_pb2

    net_txt = tmp_path / "bn.prototxt"
    net_txt.write_text('input: "x" input_shape { dim: 2 dim: 3 dim: 4 dim: 4 }\n'
                       'layer { name: "bn" type: "BN" bottom: "x" top: "y" }\n')
    saved = caffe_pb2.NetParameter()
    layer = saved.layer.add(name="bn", type="BN")
    values = [np.arange(3, dtype=F) + k for k in (1.0, 2.0, 3.0, 4.0)]
    for v in values:
        blob = layer.blobs.add()
        blob.shape.dim.extend([1, 3])
        blob.data.extend(v.tolist())
    weights = tmp_path / "bn.caffemodel"
    weights.write_bytes(saved.SerializeToString())
    net = c2t.load_net(str(net_txt), weights=str(weights), phase="TEST")
    for blob, v in zip(net.params["bn"], values):
        assert tuple(blob.shape) == (1, 3, 1, 1)
        np.testing.assert_array_equal(blob.detach().numpy().reshape(-1), v)
    # any other shape is still a mismatch, as in Caffe
    for blob in layer.blobs:
        blob.shape.dim[:] = [3, 1]
    weights.write_bytes(saved.SerializeToString())
    with pytest.raises(Exception, match="shape mismatch"):
        c2t.load_net(str(net_txt), weights=str(weights), phase="TEST")
