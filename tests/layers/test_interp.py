"""Interp (PSPNet / DeepLab-v2): crop by pad_beg/pad_end, then align-corners bilinear
resize with caffe_cpu_interp2's float arithmetic; backward is its adjoint."""

import numpy as np
import pytest
import torch

from caffe2torch.errors import BuildError
from tests.layers.helpers_core import build, top_shapes

F = np.float32


def axis_ref(n_in, n_out):
    r = F(F(n_in - 1) / F(n_out - 1)) if n_out > 1 else F(0)
    out = []
    for o in range(n_out):
        pos = F(r * F(o))
        i = int(pos)
        out.append((i, 1 if i < n_in - 1 else 0, F(pos - F(i))))
    return out


def interp_ref(x, y0, x0, h1, w1, h2, w2):
    """caffe_cpu_interp2 (not packed) over the [y0:y0+h1, x0:x0+w1] window of x."""
    n, c = x.shape[:2]
    out = np.empty((n, c, h2, w2), F)
    if (h1, w1) == (h2, w2):
        return x[:, :, y0 : y0 + h1, x0 : x0 + w1].copy()
    for oh, (ih, ph, l1h) in enumerate(axis_ref(h1, h2)):
        l0h = F(F(1) - l1h)
        for ow, (iw, pw, l1w) in enumerate(axis_ref(w1, w2)):
            l0w = F(F(1) - l1w)
            a = x[:, :, y0 + ih, x0 + iw]
            b = x[:, :, y0 + ih, x0 + iw + pw]
            cc = x[:, :, y0 + ih + ph, x0 + iw]
            d = x[:, :, y0 + ih + ph, x0 + iw + pw]
            out[:, :, oh, ow] = l0h * (l0w * a + l1w * b) + l1h * (l0w * cc + l1w * d)
    return out


def interp_backward_ref(dy, shape, y0, x0, h1, w1):
    """caffe_cpu_interp2_backward: scatter each top diff onto its four sources."""
    dx = np.zeros(shape, np.float64)
    h2, w2 = dy.shape[2:]
    if (h1, w1) == (h2, w2):
        dx[:, :, y0 : y0 + h1, x0 : x0 + w1] += dy
        return dx
    for oh, (ih, ph, l1h) in enumerate(axis_ref(h1, h2)):
        l0h = 1.0 - float(l1h)
        for ow, (iw, pw, l1w) in enumerate(axis_ref(w1, w2)):
            l0w = 1.0 - float(l1w)
            g = dy[:, :, oh, ow]
            dx[:, :, y0 + ih, x0 + iw] += l0h * l0w * g
            dx[:, :, y0 + ih, x0 + iw + pw] += l0h * float(l1w) * g
            dx[:, :, y0 + ih + ph, x0 + iw] += float(l1h) * l0w * g
            dx[:, :, y0 + ih + ph, x0 + iw + pw] += float(l1h) * float(l1w) * g
    return dx


CASES = {
    "pspnet_pool_to_60": ("height: 60 width: 60", (1, 2, 6, 6), (60, 60)),
    "pspnet_zoom_8": ("zoom_factor: 8", (1, 2, 5, 7), (33, 49)),
    "shrink_2": ("shrink_factor: 2", (2, 3, 9, 8), (5, 4)),
    "shrink_then_zoom": ("shrink_factor: 2 zoom_factor: 3", (1, 2, 9, 9), (13, 13)),
    "crop_pads": ("zoom_factor: 2 pad_beg: -1 pad_end: -2", (1, 2, 8, 9), (9, 11)),
    "same_size_copy": ("height: 4 width: 5", (1, 2, 4, 5), (4, 5)),
    "to_one_pixel": ("height: 1 width: 3", (1, 1, 4, 4), (1, 3)),
}


@pytest.mark.parametrize("case", list(CASES))
def test_forward_and_backward_match_the_fork(case):
    body, shape, out_hw = CASES[case]
    layer = build(
        f'name: "i" type: "Interp" bottom: "x" top: "y" interp_param {{ {body} }}', [shape]
    )
    assert top_shapes(layer, [shape]) == [(*shape[:2], *out_hw)]
    pad_beg = int(body.split("pad_beg: ")[1].split()[0]) if "pad_beg" in body else 0
    pad_end = int(body.split("pad_end: ")[1].split()[0]) if "pad_end" in body else 0
    h1, w1 = shape[2] + pad_beg + pad_end, shape[3] + pad_beg + pad_end
    rng = np.random.default_rng(3)
    x = rng.normal(size=shape).astype(F)
    xt = torch.from_numpy(x).requires_grad_()
    y = layer(xt)
    expected = interp_ref(x, -pad_beg, -pad_beg, h1, w1, *out_hw)
    np.testing.assert_array_equal(y.detach().numpy(), expected)
    dy = rng.normal(size=expected.shape).astype(F)
    y.backward(torch.from_numpy(dy))
    np.testing.assert_allclose(
        xt.grad.numpy(),
        interp_backward_ref(dy, shape, -pad_beg, -pad_beg, h1, w1),
        rtol=1e-5,
        atol=1e-5,
    )


@pytest.mark.parametrize(
    "body",
    ["", "height: 5", "pad_beg: 1 zoom_factor: 2", "zoom_factor: 0"],
    ids=["no_size", "height_only", "positive_pad", "zero_zoom"],
)
def test_bad_params_are_build_errors(body):
    with pytest.raises(BuildError):
        build(
            f'name: "i" type: "Interp" bottom: "x" top: "y" interp_param {{ {body} }}',
            [(1, 1, 4, 4)],
        )
