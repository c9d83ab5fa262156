"""LabelSpecificRescale (NormFace, happynear) against NumPy."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.layers.helpers_core import build


def make(fields: str, phase: str = "TRAIN", tops: int = 1):
    extra = ' top: "w"' if tops == 2 else ""
    return build(f"""name: "r" type: "LabelSpecificRescale" bottom: "ip" bottom: "label"
        top: "out"{extra} label_specific_rescale_param {{ {fields} }}""", [(3, 4), (3,)],
                 phase=phase)


def reference(x, y, pw, nw, bias_fix=False, for_ip=False, power=False):
    out = x.copy()
    grad_scale = np.ones_like(x)
    for i, t in enumerate(y):
        for j in range(x.shape[1]):
            if j == t:
                if pw != 1 and (not for_ip or x[i, j] > 0):
                    if power:
                        out[i, j] = np.sign(x[i, j]) * abs(x[i, j]) ** pw
                        grad_scale[i, j] = pw * abs(x[i, j]) ** (pw - 1)
                    else:
                        out[i, j] = x[i, j] * pw + (1 - pw if bias_fix else 0)
                        grad_scale[i, j] = pw
            elif nw != 1:
                out[i, j] *= nw
                grad_scale[i, j] = nw
    return out, grad_scale


@pytest.mark.parametrize(
    "fields,kw",
    [
        ("positive_weight: 0.5 negative_weight: 2", {}),
        ("positive_weight: 0.5 bias_fix: true", {"bias_fix": True}),
        ("positive_weight: 3 for_ip: true", {"for_ip": True}),
        ("positive_weight: 2 power_on_positive: true", {"power": True}),
    ],
    ids=["scale", "bias_fix", "for_ip", "power"],
)
def test_train_matches_fork(fields: str, kw: dict) -> None:
    torch.manual_seed(2)
    m = make(fields)
    x = torch.randn(3, 4, requires_grad=True)
    y = torch.tensor([1.0, 0.0, 3.0])
    out = m(x, y)
    g = torch.randn_like(out)
    out.backward(g)
    pw = m.positive_weight
    nw = m.negative_weight
    ref, scale = reference(x.detach().double().numpy(), y.long().numpy(), pw, nw, **kw)
    np.testing.assert_allclose(out.detach().numpy(), ref, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(x.grad.numpy(), g.numpy() * scale, rtol=1e-5, atol=1e-6)


def test_test_phase_identity_and_weight_top() -> None:
    m = make("positive_weight: 0.5", phase="TEST", tops=2)
    x = torch.randn(3, 4)
    out, w = m(x, torch.tensor([0.0, 1.0, 2.0]))
    torch.testing.assert_close(out, x)
    assert w.item() == 0.5


def test_annealed_positive_weight() -> None:
    m = make("positive_weight_base: 2 gamma: 1 power: 1 positive_weight_min: 0.4", tops=2)
    x = torch.ones(3, 4)
    seen = [m(x, torch.zeros(3))[1].item() for _ in range(6)]
    assert seen == pytest.approx([max(2 / (1 + it), 0.4) for it in range(1, 7)], rel=1e-6)
