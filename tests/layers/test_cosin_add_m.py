"""CosinAddm (ArcFace, xialuxi/arcface-caffe) against NumPy."""

from __future__ import annotations

import math

import numpy as np
import torch

from tests.layers.cos_margin_ref import arc_margin_reference
from tests.layers.helpers_core import build

M = 0.5


def test_matches_fork() -> None:
    m = build(f"""name: "a" type: "CosinAddm" bottom: "cos" bottom: "label" top: "out"
                  cosin_add_m_param {{ m: {M} }}""", [(4, 3), (4,)], phase="TRAIN")
    x = torch.tensor([[0.8, 0.1, -0.2], [0.3, -0.95, 0.1], [1.2, 0.0, 0.5], [0.1, 0.2, 0.99]],
                     requires_grad=True)
    y = torch.tensor([0.0, 1.0, 0.0, 2.0])
    out = m(x, y)
    g = torch.randn_like(out)
    out.backward(g)
    ref, ref_g = arc_margin_reference(
        x.detach().double().numpy(), y.long().numpy(), float(np.float32(M)), 1.0,
        g.double().numpy(),
    )
    np.testing.assert_allclose(out.detach().numpy(), ref, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(x.grad.numpy(), ref_g, rtol=1e-5, atol=1e-6)


def test_identity_at_test_unless_transform_test() -> None:
    text = """name: "a" type: "CosinAddm" bottom: "cos" bottom: "label" top: "out"
              cosin_add_m_param { m: 0.5 %s }"""
    x = torch.tensor([[0.5, 0.2]])
    y = torch.tensor([0.0])
    torch.testing.assert_close(build(text % "", [(1, 2), (1,)])(x, y), x)
    out = build(text % "transform_test: true", [(1, 2), (1,)])(x, y)
    assert abs(out[0, 0].item() - math.cos(math.acos(0.5) + 0.5)) < 1e-6
