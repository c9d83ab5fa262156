"""ROIPooling (Fast R-CNN): max over pooled_h x pooled_w bins of each scaled, rounded ROI;
the gradient goes to each bin's first maximum (the fork's CUDA backward)."""

import math

import numpy as np
import pytest
import torch

from tests.layers.helpers_core import build, top_shapes

F = np.float32
FLT_MAX = float(np.finfo(F).max)


def c_round(v):
    return math.floor(abs(v) + 0.5) * (1 if v >= 0 else -1)


def roi_pool_ref(x, rois, ph_n, pw_n, scale):
    """ROIPoolingLayer::Forward_cpu: top and argmax (flat h * W + w, -1 when empty)."""
    n_rois, (_, c, h, w) = rois.shape[0], x.shape
    top = np.full((n_rois, c, ph_n, pw_n), -FLT_MAX, F)
    arg = np.full((n_rois, c, ph_n, pw_n), -1)
    for r, roi in enumerate(rois):
        b = int(roi[0])
        sw, sh, ew, eh = (c_round(float(F(v * F(scale)))) for v in roi[1:5])
        rh, rw = max(eh - sh + 1, 1), max(ew - sw + 1, 1)
        bh, bw = F(F(rh) / F(ph_n)), F(F(rw) / F(pw_n))
        for ph in range(ph_n):
            for pw in range(pw_n):
                hs = min(max(math.floor(F(F(ph) * bh)) + sh, 0), h)
                he = min(max(math.ceil(F(F(ph + 1) * bh)) + sh, 0), h)
                ws = min(max(math.floor(F(F(pw) * bw)) + sw, 0), w)
                we = min(max(math.ceil(F(F(pw + 1) * bw)) + sw, 0), w)
                if he <= hs or we <= ws:
                    top[r, :, ph, pw] = 0
                    continue
                for ch in range(c):
                    for yy in range(hs, he):
                        for xx in range(ws, we):
                            if x[b, ch, yy, xx] > top[r, ch, ph, pw]:
                                top[r, ch, ph, pw] = x[b, ch, yy, xx]
                                arg[r, ch, ph, pw] = yy * w + xx
    return top, arg


def roi_pool_backward_ref(x_shape, rois, arg, dy):
    dx = np.zeros(x_shape, np.float64)
    for r, roi in enumerate(rois):
        b = int(roi[0])
        for ch in range(x_shape[1]):
            for idx, g in zip(arg[r, ch].reshape(-1), dy[r, ch].reshape(-1)):
                if idx >= 0:
                    dx[b, ch].reshape(-1)[idx] += g
    return dx


@pytest.mark.parametrize(
    ("pooled", "scale"),
    [((3, 3), 0.0625), ((2, 4), 0.5), ((7, 7), 0.25)],
    ids=["vgg_like", "rect_bins", "more_bins_than_pixels"],
)
def test_forward_and_backward_match_the_fork(pooled, scale):
    rng = np.random.default_rng(9)
    x = rng.normal(size=(2, 3, 12, 14)).astype(F)
    x[0, 0, 2:5, 2:5] = 1.5  # ties: the first maximum in row-major order wins
    rois = np.array(
        [
            [0, 0, 0, 100, 80],
            [1, 33.5, 8, 120, 150],
            [0, 40, 40, 40, 40],
            [1, -30, -10, 5, 7],
            [0, 300, 300, 400, 420],
            [1, 17.9, 22.5, 63.2, 71.1],
        ],
        F,
    )
    if scale == 0.5:
        rois[:, 1:] /= 8
    layer = build(
        f'name: "roi" type: "ROIPooling" bottom: "f" bottom: "rois" top: "p" '
        f"roi_pooling_param {{ pooled_h: {pooled[0]} pooled_w: {pooled[1]} "
        f"spatial_scale: {scale} }}",
        [x.shape, rois.shape],
    )
    assert top_shapes(layer, [x.shape, rois.shape]) == [(6, 3, *pooled)]
    top, arg = roi_pool_ref(x, rois, *pooled, scale)
    xt = torch.from_numpy(x).requires_grad_()
    y = layer(xt, torch.from_numpy(rois))
    np.testing.assert_array_equal(y.detach().numpy(), top)
    dy = rng.normal(size=top.shape).astype(F)
    y.backward(torch.from_numpy(dy))
    np.testing.assert_allclose(
        xt.grad.numpy(), roi_pool_backward_ref(x.shape, rois, arg, dy), rtol=1e-5, atol=1e-5
    )
