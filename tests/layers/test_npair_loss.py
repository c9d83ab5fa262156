"""NPairLoss (Sohn 2016) against a NumPy computation of the loss and its gradients."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from caffe2torch.io.text import read_net_text_with_positions
from caffe2torch.layers.registry import BuildContext, build_layer


def reference(a, p, lam):
    n = a.shape[0]
    s = a @ p.T
    s = s - s.max(axis=1, keepdims=True)
    prob = np.exp(s) / np.exp(s).sum(axis=1, keepdims=True)
    loss = -np.log(prob[np.arange(n), np.arange(n)]).mean()
    loss += lam * ((a * a).sum() + (p * p).sum()) / n
    ds = (prob - np.eye(n)) / n
    return loss, ds @ p + 2 * lam * a / n, ds.T @ a + 2 * lam * p / n


@pytest.mark.parametrize("fields,lam", [("", 0.002), ("npair_loss_param { reg_lambda: 0.1 }", 0.1)],
                         ids=["default", "reg_lambda"])
def test_matches_numpy(fields: str, lam: float) -> None:
    # npair_loss_param is a plug-in block: the reader keeps it for the layer's builder
    net, source = read_net_text_with_positions(
        f"""layer {{ name: "loss" type: "NPairLoss" bottom: "anchor"
               bottom: "positive" top: "loss" {fields} }}""")
    m = build_layer(BuildContext(layer=net.layer[0], bottom_shapes=[(5, 3), (5, 3)], num_tops=1,
                                 extra=source.extras_of(0)))
    a = torch.randn(5, 3, dtype=torch.float64, requires_grad=True)
    p = torch.randn(5, 3, dtype=torch.float64, requires_grad=True)
    loss = m(a, p)
    loss.backward()
    ref_loss, ga, gp = reference(a.detach().numpy(), p.detach().numpy(), lam)
    assert loss.item() == pytest.approx(ref_loss, rel=1e-10)
    np.testing.assert_allclose(a.grad.numpy(), ga, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(p.grad.numpy(), gp, rtol=1e-9, atol=1e-12)
