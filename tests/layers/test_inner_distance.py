"""InnerDistance (happynear/caffe-windows, NormFace) against NumPy: L2/L1 distances to the
blob's centres or to a second bottom, the in-place row normalisation, and the gradients
(with update_center_only, only the centre of each item's label moves)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from caffe2torch.errors import BuildError
from tests.layers.helpers_core import build


def text(distance: str = "L2", extra: str = "", bottoms: int = 1) -> str:
    names = ["feat", "centres", "label"][:bottoms]
    bottom = " ".join(f'bottom: "{b}"' for b in names)
    return f"""name: "dist" type: "InnerDistance" {bottom} top: "d"
        inner_distance_param {{ num_output: 5 distance_type: "{distance}" bias_term: false
        weight_filler {{ type: "gaussian_unitball" }} {extra} }}"""


def distances(x: np.ndarray, w: np.ndarray, l1: bool) -> np.ndarray:
    out = np.zeros((x.shape[0], w.shape[0]))
    for m in range(x.shape[0]):
        for n in range(w.shape[0]):
            diff = x[m] - w[n]
            out[m, n] = np.abs(diff).sum() if l1 else (diff * diff).sum()
    return out


def grads(x, w, top_diff, l1, labels=None):
    gx = np.zeros_like(x)
    gw = np.zeros_like(w)
    for m in range(x.shape[0]):
        for n in range(w.shape[0]):
            diff = x[m] - w[n]
            g = np.sign(diff) if l1 else 2 * diff
            gx[m] += top_diff[m, n] * g
            if labels is None or labels[m] == n:
                gw[n] -= top_diff[m, n] * g
    return gx, gw


@pytest.mark.parametrize("distance", ["L2", "L1"])
def test_blob_centres_forward_and_backward(distance: str) -> None:
    torch.manual_seed(0)
    m = build(text(distance), [(4, 2, 3)], phase="TRAIN")
    assert tuple(m.blobs[0].shape) == (5, 6)
    # gaussian_unitball: every centre has unit length
    np.testing.assert_allclose(np.linalg.norm(m.blobs[0].detach().numpy(), axis=1), 1, rtol=1e-5)
    x = torch.randn(4, 2, 3, requires_grad=True)
    out = m(x)
    top_diff = torch.randn(4, 5)
    (out * top_diff).sum().backward()
    xd, wd = x.detach().double().numpy().reshape(4, 6), m.blobs[0].detach().double().numpy()
    l1 = distance == "L1"
    np.testing.assert_allclose(out.detach().numpy(), distances(xd, wd, l1), rtol=1e-5)
    gx, gw = grads(xd, wd, top_diff.double().numpy(), l1)
    np.testing.assert_allclose(x.grad.numpy().reshape(4, 6), gx, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(m.blobs[0].grad.numpy(), gw, rtol=1e-5, atol=1e-6)


def test_normalize_rescales_the_blob_in_place() -> None:
    m = build(text(extra="normalize: true"), [(3, 4)])
    with torch.no_grad():
        m.blobs[0].mul_(3.0)
    x = torch.randn(3, 4)
    out = m(x)
    w = m.blobs[0].detach().double().numpy()
    np.testing.assert_allclose(np.linalg.norm(w, axis=1), 1, rtol=1e-5)
    np.testing.assert_allclose(out.detach().numpy(), distances(x.double().numpy(), w, False),
                               rtol=1e-5)


def test_centres_from_a_bottom_and_update_center_only() -> None:
    m = build(text(extra="update_center_only: true", bottoms=3), [(4, 3), (5, 3), (4,)])
    assert len(m.blobs) == 0
    x = torch.randn(4, 3, requires_grad=True)
    w = torch.randn(5, 3, requires_grad=True)
    labels = torch.tensor([1.0, 3.0, 1.0, 0.0])
    out = m(x, w, labels)
    top_diff = torch.randn(4, 5)
    (out * top_diff).sum().backward()
    xd, wd = x.detach().double().numpy(), w.detach().double().numpy()
    np.testing.assert_allclose(out.detach().numpy(), distances(xd, wd, False), rtol=1e-5)
    gx, gw = grads(xd, wd, top_diff.double().numpy(), False, labels.long().numpy())
    np.testing.assert_allclose(x.grad.numpy(), gx, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(w.grad.numpy(), gw, rtol=1e-5, atol=1e-6)
    assert not w.grad[2].any() and not w.grad[4].any()


def test_refusals() -> None:
    with pytest.raises(BuildError, match="distance_type"):
        build(text("cos"), [(2, 3)])
    with pytest.raises(BuildError, match="three bottoms"):
        build(text(extra="update_center_only: true", bottoms=2), [(2, 3), (5, 3)])
