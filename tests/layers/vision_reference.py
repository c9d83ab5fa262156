"""Direct NumPy transcriptions of Caffe's CPU loops for the vision layers (small inputs
only): the references the per-type tests compare the torch modules with."""

from __future__ import annotations

import math

import numpy as np

FLT_MAX = float(np.finfo(np.float32).max)


def pooled_size(size: int, k: int, s: int, p: int, ceil: bool = True) -> int:
    ratio = np.float32(size + 2 * p - k) / np.float32(s)
    out = int(math.ceil(ratio) if ceil else math.floor(ratio)) + 1
    if p and (out - 1) * s >= size + p:
        out -= 1
    return out


def pool_forward(x, method, k, s, p, ceil=True):
    """Caffe's Forward_cpu for MAX ("max") / AVE ("ave"): (top, mask)."""
    n, c, h, w = x.shape
    oh, ow = pooled_size(h, k[0], s[0], p[0], ceil), pooled_size(w, k[1], s[1], p[1], ceil)
    top = np.zeros((n, c, oh, ow), np.float32)
    mask = np.full((n, c, oh, ow), -1, np.int64)
    for i in range(n):
        for j in range(c):
            for ph in range(oh):
                for pw in range(ow):
                    hs, ws = ph * s[0] - p[0], pw * s[1] - p[1]
                    if method == "max":
                        he, we = min(hs + k[0], h), min(ws + k[1], w)
                        hs, ws = max(hs, 0), max(ws, 0)
                        best = np.float32(-FLT_MAX)
                        for y in range(hs, he):
                            for z in range(ws, we):
                                if x[i, j, y, z] > best:
                                    best = x[i, j, y, z]
                                    mask[i, j, ph, pw] = y * w + z
                        top[i, j, ph, pw] = best
                    else:
                        he, we = min(hs + k[0], h + p[0]), min(ws + k[1], w + p[1])
                        size = (he - hs) * (we - ws)
                        hs, ws, he, we = max(hs, 0), max(ws, 0), min(he, h), min(we, w)
                        total = np.float32(x[i, j, hs:he, ws:we].sum())
                        top[i, j, ph, pw] = total / size
    return top, mask


def pool_backward(x_shape, top_diff, method, k, s, p, mask=None):
    """Caffe's Backward_cpu for MAX (from the mask) and AVE."""
    n, c, h, w = x_shape
    _, _, oh, ow = top_diff.shape
    diff = np.zeros(x_shape, np.float64)
    for i in range(n):
        for j in range(c):
            for ph in range(oh):
                for pw in range(ow):
                    g = top_diff[i, j, ph, pw]
                    if method == "max":
                        idx = mask[i, j, ph, pw]
                        diff[i, j, idx // w, idx % w] += g
                        continue
                    hs, ws = ph * s[0] - p[0], pw * s[1] - p[1]
                    he, we = min(hs + k[0], h + p[0]), min(ws + k[1], w + p[1])
                    size = (he - hs) * (we - ws)
                    hs, ws, he, we = max(hs, 0), max(ws, 0), min(he, h), min(we, w)
                    diff[i, j, hs:he, ws:we] += g / size
    return diff


def stochastic_test(x, k, s, ceil=True):
    """pooling_layer.cu StoPoolForwardTest: sum(x^2) / sum(x) per window (0 if sum <= 0)."""
    n, c, h, w = x.shape
    oh, ow = pooled_size(h, k[0], s[0], 0, ceil), pooled_size(w, k[1], s[1], 0, ceil)
    top = np.zeros((n, c, oh, ow), np.float32)
    for ph in range(oh):
        for pw in range(ow):
            win = x[
                :, :, ph * s[0] : min(ph * s[0] + k[0], h), pw * s[1] : min(pw * s[1] + k[1], w)
            ]
            total = win.sum(axis=(2, 3))
            squares = (win * win).sum(axis=(2, 3))
            top[:, :, ph, pw] = np.where(total > 0, squares / np.where(total > 0, total, 1), 0)
    return top


def conv_forward(x, weight, bias, stride, pad, dilation, group):
    """2-D convolution of (N, C, H, W) as Caffe's im2col + gemm per group, in float64."""
    n, _, h, w = x.shape
    out_c, cg, kh, kw = weight.shape
    oh = (h + 2 * pad[0] - (dilation[0] * (kh - 1) + 1)) // stride[0] + 1
    ow = (w + 2 * pad[1] - (dilation[1] * (kw - 1) + 1)) // stride[1] + 1
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (pad[0],) * 2, (pad[1],) * 2))
    y = np.zeros((n, out_c, oh, ow))
    og = out_c // group
    for g in range(group):
        for o in range(g * og, (g + 1) * og):
            for ci in range(cg):
                for a in range(kh):
                    for b in range(kw):
                        patch = xp[
                            :,
                            g * cg + ci,
                            a * dilation[0] : a * dilation[0] + stride[0] * (oh - 1) + 1 : stride[
                                0
                            ],
                            b * dilation[1] : b * dilation[1] + stride[1] * (ow - 1) + 1 : stride[
                                1
                            ],
                        ]
                        y[:, o] += weight[o, ci, a, b] * patch
    if bias is not None:
        y += bias.reshape(1, -1, 1, 1)
    return y


def deconv_forward(x, weight, bias, stride, pad, dilation, group):
    """Caffe's Deconvolution (col2im of W^T x): every input pixel scatters its kernel."""
    n, c, h, w = x.shape
    _, og, kh, kw = weight.shape
    oh = stride[0] * (h - 1) + dilation[0] * (kh - 1) + 1 - 2 * pad[0]
    ow = stride[1] * (w - 1) + dilation[1] * (kw - 1) + 1 - 2 * pad[1]
    full = np.zeros((n, og * group, oh + 2 * pad[0], ow + 2 * pad[1]))
    cg = c // group
    for ci in range(c):
        g = ci // cg
        for o in range(og):
            for a in range(kh):
                for b in range(kw):
                    ys = a * dilation[0]
                    xs = b * dilation[1]
                    full[
                        :,
                        g * og + o,
                        ys : ys + stride[0] * (h - 1) + 1 : stride[0],
                        xs : xs + stride[1] * (w - 1) + 1 : stride[1],
                    ] += weight[ci, o, a, b] * x[:, ci]
    y = full[:, :, pad[0] : pad[0] + oh, pad[1] : pad[1] + ow]
    if bias is not None:
        y = y + bias.reshape(1, -1, 1, 1)
    return y


def im2col(x, kernel, stride, pad, dilation):
    """Caffe's im2col_nd_cpu for one (C, *spatial) image: (C * prod(kernel), *out)."""
    c = x.shape[0]
    spatial = x.shape[1:]
    out = [
        (n + 2 * p - (d * (k - 1) + 1)) // s + 1
        for n, k, s, p, d in zip(spatial, kernel, stride, pad, dilation)
    ]
    cols = np.zeros((c * math.prod(kernel), *out), x.dtype)
    for ch in range(c):
        for koff, kidx in enumerate(np.ndindex(*kernel)):
            row = ch * math.prod(kernel) + koff
            for oidx in np.ndindex(*out):
                pos = [
                    o * s - p + ki * d for o, s, p, ki, d in zip(oidx, stride, pad, kidx, dilation)
                ]
                if all(0 <= q < n for q, n in zip(pos, spatial)):
                    cols[(row, *oidx)] = x[(ch, *pos)]
    return cols


def lrn_across(x, size, alpha, beta, k):
    c = x.shape[1]
    pre = (size - 1) // 2
    scale = np.full(x.shape, k, np.float64)
    for ch in range(c):
        for j in range(ch - pre, ch - pre + size):
            if 0 <= j < c:
                scale[:, ch] += alpha / size * x[:, j].astype(np.float64) ** 2
    return x * scale ** (-beta)


def lrn_within(x, size, alpha, beta):
    pre = (size - 1) // 2
    pooled, _ = pool_forward(
        (x.astype(np.float64) ** 2).astype(np.float32), "ave", (size, size), (1, 1), (pre, pre)
    )
    return x * (1.0 + alpha * pooled.astype(np.float64)) ** (-beta)
