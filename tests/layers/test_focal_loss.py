"""FocalLoss (xialuxi/arcface-caffe, zimenglan-sysu-512's softmax form) against NumPy: the
loss -alpha (1 - p_t)^gamma log p_t over non-ignored items / normalizer, and the fork's
gradient g (p_c - [c = t])."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from caffe2torch.errors import BuildError
from tests.layers.helpers_core import build


def reference(x, y, alpha, gamma, ignore, top_diff):
    e = np.exp(x - x.max(axis=1, keepdims=True))
    p = e / e.sum(axis=1, keepdims=True)
    loss = 0.0
    count = 0
    grad = np.zeros_like(x)
    for i, label in enumerate(y):
        if ignore is not None and label == ignore:
            continue
        pt = p[i, label]
        power = alpha * (1 - pt) ** gamma
        loss -= power * np.log(pt)
        g = -gamma * power / max(1 - pt, 1e-10) * np.log(pt) * pt + power
        grad[i] = g * p[i]
        grad[i, label] = g * (pt - 1)
        count += 1
    return loss / count, grad * top_diff / count


@pytest.mark.parametrize(
    ("params", "alpha", "gamma", "ignore"),
    [("type: ORIGIN gamma: 2 alpha: 0.25 beta: 1", 0.25, 2.0, None),  # the corpus net
     ("gamma: 0 alpha: 1", 1.0, 0.0, None),  # plain softmax cross-entropy
     ("gamma: 1.5 alpha: 0.5", 0.5, 1.5, 2)],
    ids=["arcface_corpus", "gamma0", "ignore_label"],
)
def test_focal_loss_matches_fork(params: str, alpha: float, gamma: float, ignore) -> None:
    lp = f"loss_param {{ ignore_label: {ignore} }}" if ignore is not None else ""
    m = build(f"""name: "f" type: "FocalLoss" bottom: "x" bottom: "y" top: "loss"
              focal_loss_param {{ {params} }} {lp}""", [(6, 5), (6,)])
    x = torch.randn(6, 5, generator=torch.Generator().manual_seed(0)).mul(2).requires_grad_()
    y = torch.tensor([0.0, 2, 4, 1, 2, 3])
    loss = m(x, y)
    (0.5 * loss).backward()
    ref_loss, ref_grad = reference(x.detach().double().numpy(), y.long().numpy(), alpha, gamma,
                                   ignore, 0.5)
    assert loss.item() == pytest.approx(ref_loss, rel=1e-5)
    np.testing.assert_allclose(x.grad.numpy(), ref_grad, rtol=1e-4, atol=1e-7)


def test_linear_type_is_refused() -> None:
    with pytest.raises(BuildError, match="LINEAR"):
        build("""name: "f" type: "FocalLoss" bottom: "x" bottom: "y" top: "loss"
              focal_loss_param { type: LINEAR }""", [(2, 3), (2,)])
