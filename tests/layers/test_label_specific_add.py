"""LabelSpecificAdd (AM-Softmax margin, happynear) against NumPy."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.layers.helpers_core import build

TEXT = """name: "m" type: "LabelSpecificAdd" bottom: "fc6" bottom: "label" top: "fc6_margin"
          label_specific_add_param { bias: -0.35 %s }"""


def test_train_adds_bias_where_target_exceeds_minus_bias() -> None:
    m = build(TEXT % "", [(4, 3), (4,)], phase="TRAIN")
    x = torch.tensor([[0.9, 0.1, 0.2], [0.3, 0.2, 0.1], [0.1, 0.5, 0.36], [0.1, 0.2, 0.3]],
                     requires_grad=True)
    y = torch.tensor([0.0, 2.0, 2.0, 1.0])
    out = m(x, y)
    ref = x.detach().numpy().copy()
    for i, t in enumerate(y.long().tolist()):
        if ref[i, t] > 0.35:
            ref[i, t] += -0.35
    np.testing.assert_allclose(out.detach().numpy(), ref, rtol=1e-6)
    g = torch.randn_like(out)
    out.backward(g)
    torch.testing.assert_close(x.grad, g)  # the fork copies the top diff


def test_identity_at_test() -> None:
    m = build(TEXT % "transform_test: true", [(2, 3), (2,)], phase="TEST")
    x = torch.rand(2, 3) + 1
    torch.testing.assert_close(m(x, torch.tensor([0.0, 1.0])), x)


def test_annealed_bias() -> None:
    m = build(TEXT % "bias_base: -0.1 bias_gamma: 0.5 bias_power: 1 bias_min: -0.3 "
              "bias_max: 0", [(1, 2), (1,)], phase="TRAIN")
    x = torch.tensor([[5.0, 0.0]])
    seen = [m(x, torch.tensor([0.0]))[0, 0].item() - 5.0 for _ in range(3)]
    # bias = base + (1 + gamma it)^power - 1 clipped to [min, max], it = 0, 1, 2 ...
    expected = [min(max(-0.1 + (1 + 0.5 * it) - 1, -0.3), 0.0) for it in range(3)]
    assert seen == pytest.approx(expected, abs=1e-6)
