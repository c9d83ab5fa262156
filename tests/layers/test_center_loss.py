"""CenterLoss (ydwen/caffe-face; happynear's L1 form) against NumPy: the loss, the bottom
gradient and the fork's centre update (not scaled by the loss weight)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.layers.helpers_core import build


def text(distance: str = "L2") -> str:
    return f"""name: "center" type: "CenterLoss" bottom: "fc5" bottom: "label"
        top: "center_loss" param {{ lr_mult: 1 decay_mult: 0 }}
        center_loss_param {{ num_output: 4 center_filler {{ type: "gaussian" std: 1 }}
        distance_type: "{distance}" }}"""


def reference(x, c, y, l1, top_diff):
    d = x - c[y]
    m = x.shape[0]
    loss = np.abs(d).sum() / m if l1 else (d * d).sum() / m / 2
    used = np.sign(d) if l1 else d
    gx = used * top_diff / m
    gc = np.zeros_like(c)
    for j in range(c.shape[0]):
        members = y == j
        if members.any():
            gc[j] = -used[members].sum(axis=0) / (members.sum() + 1)
    return loss, gx, gc


@pytest.mark.parametrize("distance", ["L2", "L1"])
def test_matches_fork(distance: str) -> None:
    torch.manual_seed(1)
    m = build(text(distance), [(6, 3), (6,)], phase="TRAIN")
    x = torch.randn(6, 3, requires_grad=True)
    y = torch.tensor([0, 2, 2, 1, 0, 2], dtype=torch.float32)
    c = m.blobs[0].detach().numpy().astype(np.float64)
    loss = m(x, y)
    (loss * 0.5).backward()  # a loss weight of 0.5: it scales the bottom gradient only
    ref_loss, gx, gc = reference(x.detach().double().numpy(), c, y.long().numpy(),
                                 distance == "L1", 0.5)
    assert loss.item() == pytest.approx(ref_loss, rel=1e-5)
    np.testing.assert_allclose(x.grad.numpy(), gx, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(m.blobs[0].grad.numpy(), gc, rtol=1e-5, atol=1e-6)
    assert not m.blobs[0].grad[3].any()  # class 3 is not in the batch


def test_frozen_centres_l1_uses_raw_distance() -> None:
    m = build(text("L1"), [(2, 3), (2,)])
    m.blobs[0].requires_grad_(False)
    x = torch.randn(2, 3, requires_grad=True)
    y = torch.tensor([1.0, 3.0])
    m(x, y).backward()
    d = (x - m.blobs[0][y.long()]).detach()
    torch.testing.assert_close(x.grad, d / 2)


def test_bad_labels() -> None:
    from caffe2torch.errors import BuildError

    with pytest.raises(BuildError, match="one value per item"):
        build(text(), [(6, 3), (6, 2)])
