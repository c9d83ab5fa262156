"""The metric loss layers' tests compare values and gradients with NumPy; the one layout
they checked by value only, TripletLoss with separate anchor / positive / negative bottoms,
is checked here, gradients of all three bottoms included, against a vectorised NumPy
form of the fork's forward and hand-written backward (alpha = 1 / num)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.layers.helpers_core import build


def numpy_triplet(a, p, n, margin, losstype, use_pair):
    """(loss, grad a, grad p, grad n) for one negative per anchor, in float64."""
    alpha = 1.0 / len(a)
    dpos, dneg = a - p, a - n
    dp, dn = (dpos ** 2).sum(1, keepdims=True), (dneg ** 2).sum(1, keepdims=True)
    if losstype == 0:
        term = margin + dp - dn
        ga, gp, gn = dpos - dneg, -dpos, dneg
    elif losstype == 1:
        q = dp + margin
        term = 1 - dn / q
        ga, gp, gn = dn / q**2 * dpos - dneg / q, -dn / q**2 * dpos, dneg / q
    else:
        e = np.exp(dp) + margin
        term = 1 - np.exp(dn) / e
        w = np.exp(dn) * np.exp(dp) / e**2
        ga, gp, gn = w * dpos - np.exp(dn) / e * dneg, -w * dpos, np.exp(dn) / e * dneg
    active = term > 0
    loss = np.where(active, term, 0.0).sum()
    ga, gp, gn = (alpha * np.where(active, g, 0.0) for g in (ga, gp, gn))
    if use_pair:
        loss += dp.sum()
        ga, gp = ga + alpha * dpos, gp - alpha * dpos
    return loss * alpha / 2, ga, gp, gn


@pytest.mark.parametrize("losstype", [0, 1, 2])
@pytest.mark.parametrize("use_pair", [0, 1])
def test_three_bottom_triplet_loss_values_and_gradients(losstype, use_pair):
    margin = 0.4
    m = build(f"""name: "loss" type: "TripletLoss" bottom: "a" bottom: "p" bottom: "n"
                  top: "loss" triplet_loss_param {{ margin: {margin} losstype: {losstype}
                  use_pair: {use_pair} }}""", [(6, 3)] * 3)
    gen = torch.Generator().manual_seed(10 * losstype + use_pair)
    a, p, n = ((torch.randn(6, 3, generator=gen) * 0.6).requires_grad_(True)
               for _ in range(3))
    loss = m(a, p, n)
    loss.backward()
    want, ga, gp, gn = numpy_triplet(*(t.detach().double().numpy() for t in (a, p, n)),
                                     margin, losstype, use_pair)
    assert loss.item() == pytest.approx(want, rel=1e-5)
    for got, ref in ((a, ga), (p, gp), (n, gn)):
        np.testing.assert_allclose(got.grad.numpy(), ref, rtol=1e-4, atol=1e-6)


def test_some_triplets_are_inactive():
    # the case above must exercise the hinge: with margin 0 and losstype 0 a triplet with
    # its negative farther than its positive contributes nothing
    a = np.zeros((2, 1))
    p = np.array([[1.0], [1.0]])
    n = np.array([[2.0], [0.5]])
    loss, ga, _, gn = numpy_triplet(a, p, n, 0.0, 0, 0)
    assert loss == pytest.approx((1 - 0.25) / 2 / 2)
    assert ga[0, 0] == 0 and gn[0, 0] == 0 and gn[1, 0] == pytest.approx(-0.25)
