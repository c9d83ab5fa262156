"""TripletLoss of the Caffe triplet forks (PR #5019 / #2603) against NumPy loops."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from tests.layers.helpers_core import build


def reference(feat, k, margin, losstype, use_pair):
    """The fork's forward and its hand-written backward (alpha = 1 / num_set)."""
    size = 2 + k
    num_set = feat.shape[0] // size
    loss = 0.0
    grad = np.zeros_like(feat)
    alpha = 1.0 / num_set
    for s in range(num_set):
        a, p = feat[s * size], feat[s * size + 1]
        dpos = a - p
        dp = dpos @ dpos
        if use_pair:
            loss += dp
            grad[s * size] += alpha * dpos
            grad[s * size + 1] -= alpha * dpos
        for t in range(k):
            dneg = a - feat[s * size + 2 + t]
            dn = dneg @ dneg
            if losstype == 0:
                term = margin + dp - dn
                ga, gp, gn = alpha * (dpos - dneg), -alpha * dpos, alpha * dneg
            elif losstype == 1:
                term = 1 - dn / (dp + margin)
                ga = alpha * (dn / (dp + margin) ** 2 * dpos - dneg / (dp + margin))
                gp = -alpha * dn / (dp + margin) ** 2 * dpos
                gn = alpha * dneg / (dp + margin)
            else:
                e = math.exp(dp) + margin
                term = 1 - math.exp(dn) / e
                ga = alpha * (math.exp(dn) * math.exp(dp) / e**2 * dpos - math.exp(dn) / e * dneg)
                gp = -alpha * math.exp(dn) * math.exp(dp) / e**2 * dpos
                gn = alpha * math.exp(dn) / e * dneg
            if term > 0:
                loss += term
                grad[s * size] += ga
                grad[s * size + 1] += gp
                grad[s * size + 2 + t] += gn
    return loss / num_set / 2, grad


@pytest.mark.parametrize("losstype", [0, 1, 2])
@pytest.mark.parametrize("use_pair", [0, 1])
def test_single_bottom_layout(losstype: int, use_pair: int) -> None:
    torch.manual_seed(losstype * 2 + use_pair)
    m = build(f"""name: "loss" type: "TripletLoss" bottom: "feat" bottom: "label" top: "loss"
                  triplet_loss_param {{ margin: 0.5 losstype: {losstype} num_negatives: 3
                  use_pair: {use_pair} }}""", [(10, 4), (10,)])
    feat = (torch.randn(10, 4) * 0.5).requires_grad_(True)
    loss = m(feat, torch.zeros(10))
    loss.backward()
    ref_loss, ref_grad = reference(feat.detach().double().numpy(), 3, 0.5, losstype, use_pair)
    assert loss.item() == pytest.approx(ref_loss, rel=1e-5)
    np.testing.assert_allclose(feat.grad.numpy(), ref_grad, rtol=1e-4, atol=1e-6)


def test_num_triplets_spelling_of_pr_2603() -> None:
    m = build("""name: "loss" type: "TripletLoss" bottom: "feat" bottom: "sim" top: "loss"
                 triplet_loss_param { margin: 1 losstype: 0 num_triplets: 1 }""", [(6, 3), (6,)])
    assert m.num_negatives == 1


def test_three_bottom_layout() -> None:
    m = build("""name: "loss" type: "TripletLoss" bottom: "a" bottom: "p" bottom: "n"
                 top: "loss" triplet_loss_param { margin: 0.2 }""", [(4, 3)] * 3)
    a, p, n = (torch.randn(4, 3) for _ in range(3))
    interleaved = torch.stack([a, p, n], dim=1).reshape(12, 3).double().numpy()
    ref_loss, _ = reference(interleaved, 1, 0.2, 1, 0)  # default losstype is 1
    assert m(a, p, n).item() == pytest.approx(ref_loss, rel=1e-5)


def test_batch_must_hold_whole_sets() -> None:
    from caffe2torch.errors import BuildError

    with pytest.raises(BuildError, match="whole sets"):
        build("""name: "loss" type: "TripletLoss" bottom: "feat" bottom: "label" top: "loss"
                 triplet_loss_param { num_negatives: 3 }""", [(9, 4), (9,)])
