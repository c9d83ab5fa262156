"""AdaCosAddmScale (xialuxi/arcface-caffe) against NumPy, over consecutive forwards."""

from __future__ import annotations

import math

import numpy as np
import torch

from tests.layers.cos_margin_ref import arc_margin_reference
from tests.layers.helpers_core import build


def test_matches_fork_over_iterations() -> None:
    torch.manual_seed(3)
    m = build("""name: "s" type: "AdaCosAddmScale" bottom: "cos" bottom: "label" top: "out"
                 adacos_add_m_scale_param { m: 0.3 num_classes: 6 }""", [(5, 6), (5,)],
              phase="TRAIN")
    s = math.sqrt(2) * math.log(6 - 1)
    for _ in range(3):
        x = (torch.rand(5, 6) * 1.8 - 0.9).requires_grad_(True)
        y = torch.tensor([0.0, 5.0, 2.0, 2.0, 1.0])
        out = m(x, y)
        g = torch.randn_like(out)
        out.backward(g)
        xn = x.detach().double().numpy()
        lab = y.long().numpy()
        # the fork: s from the previous s, the mean angle of all entries and non-target exps
        cos_med = math.cos(min(np.arccos(xn).mean(), math.pi / 4))
        keep = np.ones_like(xn)
        keep[np.arange(5), lab] = 0
        s = math.log(np.exp(s * xn * keep).sum() / 5) / cos_med
        ref, ref_g = arc_margin_reference(xn, lab, float(np.float32(0.3)), s, g.double().numpy())
        np.testing.assert_allclose(out.detach().numpy(), ref, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(x.grad.numpy(), ref_g, rtol=1e-4, atol=1e-5)
