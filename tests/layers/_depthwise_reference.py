"""NumPy reference of the depthwise convolution loops (conv_dw_layer.cpp)."""

import numpy as np


def depthwise_ref(x, w, b, stride, pad, dilation=(1, 1)):
    """Forward_cpu: one filter per channel, zero outside the input; plus the bias."""
    n, c, h, wd = x.shape
    kh, kw = w.shape[2:]
    oh = (h + 2 * pad[0] - (dilation[0] * (kh - 1) + 1)) // stride[0] + 1
    ow = (wd + 2 * pad[1] - (dilation[1] * (kw - 1) + 1)) // stride[1] + 1
    m = w.shape[0] // c
    out = np.zeros((n, w.shape[0], oh, ow), np.float64)
    for o in range(w.shape[0]):
        ci = o // m
        for i in range(kh):
            for j in range(kw):
                for y in range(oh):
                    hi = -pad[0] + y * stride[0] + i * dilation[0]
                    if not 0 <= hi < h:
                        continue
                    for z in range(ow):
                        wi = -pad[1] + z * stride[1] + j * dilation[1]
                        if 0 <= wi < wd:
                            out[:, o, y, z] += w[o, 0, i, j] * x[:, ci, hi, wi]
    if b is not None:
        out += b[None, :, None, None]
    return out


def depthwise_backward_ref(x, w, dy, stride, pad, dilation=(1, 1)):
    """Backward_cpu: bias, weight and bottom diffs by the same loops."""
    _n, c, h, wd = x.shape
    kh, kw = w.shape[2:]
    oh, ow = dy.shape[2:]
    m = w.shape[0] // c
    dw = np.zeros(w.shape, np.float64)
    dx = np.zeros(x.shape, np.float64)
    for o in range(w.shape[0]):
        ci = o // m
        for i in range(kh):
            for j in range(kw):
                for y in range(oh):
                    hi = -pad[0] + y * stride[0] + i * dilation[0]
                    if not 0 <= hi < h:
                        continue
                    for z in range(ow):
                        wi = -pad[1] + z * stride[1] + j * dilation[1]
                        if 0 <= wi < wd:
                            dw[o, 0, i, j] += (x[:, ci, hi, wi] * dy[:, o, y, z]).sum()
                            dx[:, ci, hi, wi] += w[o, 0, i, j] * dy[:, o, y, z]
    return dy.sum(axis=(0, 2, 3)), dw, dx
