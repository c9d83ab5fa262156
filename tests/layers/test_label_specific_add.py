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


TWO_TOPS = """name: "m" type: "LabelSpecificAdd" bottom: "fc6" bottom: "label"
              top: "fc6_margin" top: "margin"
              label_specific_add_param { iteration: 0 bias_base: 0 bias_gamma: -0.5
                                         bias_power: 1 bias_min: -0.4 bias_max: 0 }"""


def test_second_top_is_the_bias_of_the_forward() -> None:
    # AM-Softmax's face_train_test_wo_fn.prototxt: top 1 (Reshape({1})) gets bias_ in TRAIN
    m = build(TWO_TOPS, [(2, 3), (2,)], phase="TRAIN")
    assert m.infer_shapes([(2, 3), (2,)]) == [(2, 3), (1,)]
    x = torch.tensor([[0.9, 0.1, 0.2], [0.3, 0.2, 0.8]])
    label = torch.tensor([0.0, 2.0])
    seen = []
    for it in range(3):
        out, margin = m(x, label)
        bias = min(max(0.0 + (1 - 0.5 * it) - 1, -0.4), 0.0)  # 0, -0.4 (from -0.5), -0.4
        assert margin.shape == (1,) and margin.item() == pytest.approx(bias)
        ref = x.clone()
        ref[0, 0] += bias if ref[0, 0] > -bias else 0.0
        ref[1, 2] += bias if ref[1, 2] > -bias else 0.0
        torch.testing.assert_close(out, ref)
        seen.append(margin.item())
    assert seen == pytest.approx([0.0, -0.4, -0.4])
    # TEST: the fork returns before writing top 1, which stays zero
    t = build(TWO_TOPS, [(2, 3), (2,)], phase="TEST")
    out, margin = t(x, label)
    torch.testing.assert_close(out, x)
    assert margin.tolist() == [0.0]
