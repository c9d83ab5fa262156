"""Local (BVLC PR, V1 ``LOCAL``): a convolution with a separate filter per output position.
The reference is local_layer.cpp's loops: im2col, then per output m and position p the sum
over k of col[k, p] * weight[m, 0, k, p], plus bias[0, 0, m, p]."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from caffe2torch.errors import BuildError
from tests.layers.fork_net import build_fork_layer


def im2col(x: np.ndarray, k: int, stride: int, pad: int) -> np.ndarray:
    c, h, w = x.shape
    oh, ow = (h + 2 * pad - k) // stride + 1, (w + 2 * pad - k) // stride + 1
    padded = np.zeros((c, h + 2 * pad, w + 2 * pad), x.dtype)
    padded[:, pad:pad + h, pad:pad + w] = x
    col = np.zeros((c * k * k, oh * ow), x.dtype)
    for ch in range(c):
        for i in range(k):
            for j in range(k):
                row = (ch * k + i) * k + j
                col[row] = padded[ch, i:i + stride * oh:stride, j:j + stride * ow:stride].ravel()
    return col


def col2im(col: np.ndarray, shape: tuple[int, int, int], k: int, stride: int, pad: int):
    c, h, w = shape
    oh, ow = (h + 2 * pad - k) // stride + 1, (w + 2 * pad - k) // stride + 1
    padded = np.zeros((c, h + 2 * pad, w + 2 * pad), col.dtype)
    for ch in range(c):
        for i in range(k):
            for j in range(k):
                row = (ch * k + i) * k + j
                padded[ch, i:i + stride * oh:stride, j:j + stride * ow:stride] += \
                    col[row].reshape(oh, ow)
    return padded[:, pad:pad + h, pad:pad + w]


LAYER = ('name: "loc" type: "Local" bottom: "x" top: "y" local_param {{ num_output: 3 '
         'kernel_size: {k} stride: {s} pad: {p} weight_filler {{ type: "gaussian" std: 1 }} '
         'bias_filler {{ type: "gaussian" std: 1 }} }}')


@pytest.mark.parametrize(("k", "s", "p"), [(3, 1, 0), (3, 2, 1), (2, 1, 1)],
                         ids=["k3", "k3-stride2-pad1", "k2-pad1"])
def test_forward_and_backward_match_the_pr(tmp_path: Path, k: int, s: int, p: int) -> None:
    shape = (2, 2, 6, 5)
    _, layer = build_fork_layer(tmp_path, LAYER.format(k=k, s=s, p=p), shape)
    weight, bias = (b.detach().numpy() for b in layer.blobs)
    rng = np.random.default_rng(3)
    x = rng.normal(size=shape).astype(np.float32)
    xt = torch.from_numpy(x).requires_grad_()
    y = layer(xt)
    oh, ow = (6 + 2 * p - k) // s + 1, (5 + 2 * p - k) // s + 1
    ref = np.zeros((2, 3, oh * ow), np.float64)
    cols = [im2col(x[n], k, s, p).astype(np.float64) for n in range(2)]
    for n in range(2):
        for m in range(3):
            ref[n, m] = (cols[n] * weight[m, 0]).sum(axis=0) + bias[0, 0, m]
    np.testing.assert_allclose(y.detach().numpy(), ref.reshape(2, 3, oh, ow), rtol=1e-5,
                               atol=1e-5)
    dy = rng.normal(size=(2, 3, oh, ow)).astype(np.float32)
    y.backward(torch.from_numpy(dy))
    d = dy.reshape(2, 3, -1).astype(np.float64)
    dw = np.zeros_like(weight, np.float64)
    dx = np.zeros(shape, np.float64)
    for n in range(2):
        x_diff = np.zeros_like(cols[n])
        for m in range(3):
            dw[m, 0] += cols[n] * d[n, m]
            x_diff += weight[m, 0] * d[n, m]
        dx[n] = col2im(x_diff, shape[1:], k, s, p)
    np.testing.assert_allclose(layer.blobs[0].grad.numpy(), dw, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(layer.blobs[1].grad.numpy()[0, 0], d.sum(axis=0), rtol=1e-5,
                               atol=1e-5)
    np.testing.assert_allclose(xt.grad.numpy(), dx, rtol=1e-5, atol=1e-5)


def test_blob_shapes_and_no_bias(tmp_path: Path) -> None:
    layer_text = LAYER.format(k=3, s=1, p=0).replace("num_output: 3", "num_output: 4 "
                                                     "bias_term: false")
    _, layer = build_fork_layer(tmp_path, layer_text, (1, 2, 5, 5))
    assert [tuple(b.shape) for b in layer.blobs] == [(4, 1, 18, 9)]


def test_v1_enum_type_builds(tmp_path: Path) -> None:
    import caffe2torch as c2t

    path = tmp_path / "v1.prototxt"
    path.write_text('input: "x"\ninput_dim: 1\ninput_dim: 1\ninput_dim: 4\ninput_dim: 4\n'
                    'layers { name: "loc" type: LOCAL bottom: "x" top: "y"\n'
                    "  local_param { num_output: 2 kernel_size: 2 } }\n")
    net = c2t.load_net(path)
    assert [tuple(b.shape) for b in net.params["loc"]] == [(2, 1, 4, 9), (1, 1, 2, 9)]


def test_bad_settings_are_named(tmp_path: Path) -> None:
    with pytest.raises(BuildError, match="smaller than the kernel"):
        build_fork_layer(tmp_path, LAYER.format(k=7, s=1, p=0), (1, 1, 4, 4))
    with pytest.raises(BuildError, match="num_output must be positive"):
        build_fork_layer(tmp_path, 'name: "loc" type: "Local" bottom: "x" top: "y"',
                         (1, 1, 4, 4))
