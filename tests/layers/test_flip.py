"""Flip (happynear) against NumPy indexing."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.layers.helpers_core import build


@pytest.mark.parametrize("w,h", [(True, False), (False, True), (True, True), (False, False)])
def test_matches_fork(w: bool, h: bool) -> None:
    m = build(f"""name: "f" type: "Flip" bottom: "data" top: "flip"
                  flip_param {{ flip_width: {str(w).lower()} flip_height: {str(h).lower()} }}""",
              [(2, 3, 4, 5)])
    x = torch.randn(2, 3, 4, 5, requires_grad=True)
    y = m(x)
    ref = x.detach().numpy()
    if w:
        ref = ref[:, :, :, ::-1]
    if h:
        ref = ref[:, :, ::-1, :]
    np.testing.assert_array_equal(y.detach().numpy(), ref)
    g = torch.randn_like(y)
    y.backward(g)
    back = g.numpy()
    if w:
        back = back[:, :, :, ::-1]
    if h:
        back = back[:, :, ::-1, :]
    np.testing.assert_array_equal(x.grad.numpy(), back)


def test_default_flips_width() -> None:
    m = build('name: "f" type: "Flip" bottom: "data" top: "flip"', [(1, 1, 1, 3)])
    x = torch.tensor([[[[1.0, 2.0, 3.0]]]])
    assert m(x).flatten().tolist() == [3.0, 2.0, 1.0]
