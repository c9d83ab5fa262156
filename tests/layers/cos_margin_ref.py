"""NumPy transcription of arcface-caffe's cos(theta + m) margin (CPU code), shared by the
CosinAddm and AdaCosAddmScale tests."""

from __future__ import annotations

import math


def arc_margin_reference(x, y, m, scale, top_diff):
    out = x.copy()
    grad = top_diff * scale
    for i, t in enumerate(y):
        c = min(x[i, t], 1.0)
        s = math.sqrt(max(1 - c * c, 0.0))
        if c <= math.cos(math.pi - m):
            out[i, t] = c - math.sin(math.pi - m) * m
            coeff = 1.0
        else:
            out[i, t] = c * math.cos(m) - s * math.sin(m)
            coeff = 1.0 if s == 0 else math.cos(m) + math.sin(m) * c / s
        grad[i, t] *= coeff
    return out * scale, grad
