"""PSROIPooling (R-FCN): position-sensitive average pooling of each ROI."""

import math

import numpy as np
import pytest
import torch

from caffe2torch.errors import BuildError
from tests.layers.helpers_core import build, top_shapes

F = np.float32


def c_round(v):
    return math.floor(abs(v) + 0.5) * (1 if v >= 0 else -1)


def psroi_ref(x, rois, scale, output_dim, k):
    """PSROIPoolingForward (CUDA), one output at a time; also the bins for backward."""
    _, _, h, w = x.shape
    top = np.zeros((rois.shape[0], output_dim, k, k), np.float64)
    bins = {}
    for n, roi in enumerate(rois):
        b = int(roi[0])
        sw = F(F(c_round(float(roi[1]))) * F(scale))
        sh = F(F(c_round(float(roi[2]))) * F(scale))
        ew = F(F(c_round(float(roi[3])) + 1.0) * F(scale))
        eh = F(F(c_round(float(roi[4])) + 1.0) * F(scale))
        rw, rh = F(max(float(F(ew - sw)), 0.1)), F(max(float(F(eh - sh)), 0.1))
        bh, bw = F(rh / F(k)), F(rw / F(k))
        for ct in range(output_dim):
            for ph in range(k):
                for pw in range(k):
                    hs = min(max(math.floor(F(F(F(ph) * bh) + sh)), 0), h)
                    he = min(max(math.ceil(F(F(F(ph + 1) * bh) + sh)), 0), h)
                    ws = min(max(math.floor(F(F(F(pw) * bw) + sw)), 0), w)
                    we = min(max(math.ceil(F(F(F(pw + 1) * bw) + sw)), 0), w)
                    c = (ct * k + ph) * k + pw
                    bins[n, ct, ph, pw] = (b, c, hs, he, ws, we)
                    if he <= hs or we <= ws:
                        continue
                    area = (he - hs) * (we - ws)
                    top[n, ct, ph, pw] = x[b, c, hs:he, ws:we].astype(np.float64).sum() / area
    return top, bins


@pytest.mark.parametrize(("k", "output_dim", "scale"), [(3, 2, 0.0625), (2, 3, 0.5)])
def test_forward_and_backward_match_the_fork(k, output_dim, scale):
    rng = np.random.default_rng(10)
    x = rng.normal(size=(2, output_dim * k * k, 9, 11)).astype(F)
    rois = np.array(
        [
            [0, 0, 0, 150, 130],
            [1, 20.4, 33.6, 90.5, 70],
            [0, 60, 60, 61, 60],
            [1, -50, -40, 2, 3],
            [0, 500, 500, 600, 600],
        ],
        F,
    )
    if scale == 0.5:
        rois[:, 1:] /= 8
    layer = build(
        f'name: "ps" type: "PSROIPooling" bottom: "f" bottom: "rois" top: "p" '
        f"psroi_pooling_param {{ spatial_scale: {scale} output_dim: {output_dim} "
        f"group_size: {k} }}",
        [x.shape, rois.shape],
    )
    assert top_shapes(layer, [x.shape, rois.shape]) == [(5, output_dim, k, k)]
    top, bins = psroi_ref(x, rois, scale, output_dim, k)
    xt = torch.from_numpy(x).requires_grad_()
    y = layer(xt, torch.from_numpy(rois))
    np.testing.assert_allclose(y.detach().numpy(), top, rtol=1e-5, atol=1e-6)
    dy = rng.normal(size=top.shape)
    y.backward(torch.from_numpy(dy.astype(F)))
    # PSROIPoolingBackwardAtomic: diff / area to every element of the bin.
    dx = np.zeros(x.shape, np.float64)
    for key, (b, c, hs, he, ws, we) in bins.items():
        if he > hs and we > ws:
            dx[b, c, hs:he, ws:we] += dy[key] / ((he - hs) * (we - ws))
    np.testing.assert_allclose(xt.grad.numpy(), dx, rtol=1e-5, atol=1e-6)


def test_channel_count_must_match():
    with pytest.raises(BuildError, match="output_dim"):
        build(
            'name: "ps" type: "PSROIPooling" bottom: "f" bottom: "rois" top: "p" '
            "psroi_pooling_param { spatial_scale: 1 output_dim: 2 group_size: 3 }",
            [(1, 17, 5, 5), (1, 5)],
        )
