"""Normalize (SSD, weiliu89/caffe): L2 normalisation over C x H x W or over C per position,
times a learned scale; NormFace's Normalize (normalize_param) is dispatched elsewhere."""

import numpy as np
import pytest
import torch

from caffe2torch.layers.forks.face import CaffeFeatureNormalize
from caffe2torch.layers.forks.ssd import CaffeNormalize
from tests.layers.helpers_core import build


def ssd_normalize_ref(x, scale, across_spatial, eps):
    """NormalizeLayer::Forward_cpu and Backward_cpu, one image at a time (float64)."""
    n, c = x.shape[:2]
    xf = x.reshape(n, c, -1).astype(np.float64)
    s = np.broadcast_to(np.asarray(scale, np.float64).reshape(-1, 1), (c, 1))
    top = np.empty_like(xf)
    norms = []
    for i in range(n):
        if across_spatial:
            norm = np.sqrt(np.sum(xf[i] ** 2) + eps)
        else:
            norm = np.sqrt(np.sum(xf[i] ** 2, axis=0, keepdims=True) + eps)
        norms.append(norm)
        top[i] = xf[i] / norm * s
    return top.reshape(x.shape), norms


def ssd_normalize_backward_ref(x, scale, top, top_diff, norms, across_spatial, shared):
    n, c = x.shape[:2]
    xf = x.reshape(n, c, -1).astype(np.float64)
    tf = top.reshape(n, c, -1)
    df = top_diff.reshape(n, c, -1).astype(np.float64)
    s = np.asarray(scale, np.float64)
    scale_diff = np.sum(tf * df) / s if shared else np.sum(tf * df, axis=(0, 2)) / s
    bottom_diff = np.empty_like(xf)
    for i in range(n):
        norm = norms[i]
        if across_spatial:
            a = np.sum(xf[i] * df[i])
            bd = (df[i] - xf[i] * a / norm / norm) / norm
        else:
            a = np.sum(xf[i] * df[i], axis=0, keepdims=True)
            bd = (df[i] - xf[i] * a / norm**2) / norm
        bottom_diff[i] = bd * (s if shared else s.reshape(-1, 1))
    return bottom_diff.reshape(x.shape), scale_diff


@pytest.mark.parametrize("across_spatial", [True, False], ids=["across", "per_position"])
@pytest.mark.parametrize("shared", [True, False], ids=["shared", "per_channel"])
def test_forward_and_backward_match_the_fork(across_spatial, shared):
    text = f"""name: "norm" type: "Normalize" bottom: "x" top: "y"
      norm_param {{ across_spatial: {str(across_spatial).lower()}
        channel_shared: {str(shared).lower()}
        scale_filler {{ type: "constant" value: 20 }} }}"""
    layer = build(text, [(2, 3, 4, 5)])
    assert isinstance(layer, CaffeNormalize)
    rng = np.random.default_rng(0)
    scale = rng.uniform(0.5, 2.0, size=() if shared else (3,)).astype(np.float32)
    with torch.no_grad():
        assert torch.all(layer.blobs[0] == 20.0)
        layer.blobs[0].copy_(torch.from_numpy(np.asarray(scale)))
    x = rng.normal(size=(2, 3, 4, 5)).astype(np.float32)
    dy = rng.normal(size=x.shape).astype(np.float32)
    eps = float(np.float32(1e-10))
    top, norms = ssd_normalize_ref(x, scale, across_spatial, eps)
    xt = torch.from_numpy(x).requires_grad_()
    y = layer(xt)
    np.testing.assert_allclose(y.detach().numpy(), top, rtol=2e-6, atol=1e-6)
    y.backward(torch.from_numpy(dy))
    bd, sd = ssd_normalize_backward_ref(x, scale, top, dy, norms, across_spatial, shared)
    np.testing.assert_allclose(xt.grad.numpy(), bd, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(layer.blobs[0].grad.numpy(), sd, rtol=1e-4, atol=1e-4)


def test_defaults_are_across_spatial_shared_scale_one():
    layer = build('name: "n" type: "Normalize" bottom: "x" top: "y" norm_param { }', [(1, 2, 3, 3)])
    assert layer.blobs[0].shape == () and float(layer.blobs[0].detach()) == 1.0
    x = torch.arange(18, dtype=torch.float32).reshape(1, 2, 3, 3)
    y = layer(x)
    torch.testing.assert_close(y, x / torch.sqrt((x * x).sum() + 1e-10))


def test_ssd_corpus_conv4_3_norm_has_one_scale_per_channel():
    layer = build(
        """name: "conv4_3_norm" type: "Normalize" bottom: "conv4_3" top: "conv4_3_norm"
        norm_param { across_spatial: false scale_filler { type: "constant" value: 20 }
                     channel_shared: false }""",
        [(1, 512, 38, 38)],
    )
    assert tuple(layer.blobs[0].shape) == (512,)


@pytest.mark.parametrize(
    ("text", "shape"),
    [
        ('normalize_param { normalize_type: "L2" }', (2, 8)),
        ("", (2, 8)),  # NormFace's files often give no parameter at all
    ],
    ids=["normalize_param", "paramless_features"],
)
def test_normface_layers_go_to_the_face_builder(text, shape):
    layer = build(f'name: "n" type: "Normalize" bottom: "x" top: "y" {text}', [shape])
    assert isinstance(layer, CaffeFeatureNormalize)


def test_two_tops_without_param_is_normface():
    layer = build('name: "n" type: "Normalize" bottom: "x" top: "y" top: "norm"', [(2, 4, 1, 1)])
    assert isinstance(layer, CaffeFeatureNormalize)


def test_paramless_feature_map_is_ssd():
    layer = build('name: "n" type: "Normalize" bottom: "x" top: "y"', [(1, 4, 3, 3)])
    assert isinstance(layer, CaffeNormalize)
