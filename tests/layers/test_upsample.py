"""Upsample (alexgkendall/caffe-segnet) against a loop transcription of the fork: max
unpooling by the mask of a MAX Pooling layer (last write wins), the output size rules, and
the fork's backward (every bottom element reads the top diff at its index)."""

from __future__ import annotations

import textwrap

import numpy as np
import pytest
import torch

import caffe2torch as c2t
from caffe2torch.errors import BuildError
from tests.layers.helpers_core import build


def unpool_ref(x, mask, out_h, out_w, top_diff):
    n, c = x.shape[:2]
    top = np.zeros((n, c, out_h * out_w))
    diff = np.zeros_like(x).reshape(n, c, -1)
    for a in range(n):
        for b in range(c):
            xs, ms = x[a, b].reshape(-1), mask[a, b].reshape(-1).astype(int)
            for i in range(xs.size):
                top[a, b, ms[i]] = xs[i]
                diff[a, b, i] = top_diff[a, b].reshape(-1)[ms[i]]
    return top.reshape(n, c, out_h, out_w), diff.reshape(x.shape)


def text(params: str) -> str:
    return (f'name: "up" type: "Upsample" bottom: "x" bottom: "mask" top: "y" '
            f"upsample_param {{ {params} }}")


@pytest.mark.parametrize(
    ("params", "size"),
    [("scale: 2", (6, 8)), ("scale: 2 pad_out_h: true", (5, 8)),
     ("upsample_h: 7 upsample_w: 9", (7, 9)), ("scale_h: 3 scale_w: 2", (9, 8))],
    ids=["scale", "pad_out_h", "explicit", "scale_hw"],
)
def test_unpool_matches_fork(params: str, size: tuple[int, int]) -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 3, 4, generator=gen, requires_grad=True)
    plane = size[0] * size[1]
    mask = torch.randint(0, plane, (2, 3, 3, 4), generator=gen).float()
    mask[0, 0, 0, :2] = 5.0  # two elements share an index: the later one wins
    m = build(text(params), [(2, 3, 3, 4), (2, 3, 3, 4)])
    y = m(x, mask)
    assert tuple(y.shape) == (2, 3, *size)
    top_diff = torch.randn(y.shape, generator=gen)
    (y * top_diff).sum().backward()
    want, grad = unpool_ref(x.detach().double().numpy(), mask.numpy(), *size,
                            top_diff.double().numpy())
    np.testing.assert_allclose(y.detach().numpy(), want, rtol=1e-6)
    np.testing.assert_allclose(x.grad.numpy(), grad, rtol=1e-6)
    assert x.grad[0, 0, 0, 0] == top_diff.reshape(2, 3, -1)[0, 0, 5]  # the loser reads it too


def test_segnet_pool_then_upsample_in_a_net(tmp_path) -> None:
    net_text = textwrap.dedent("""
        layer { name: "in" type: "Input" top: "data" input_param { shape { dim: 1 dim: 2
                dim: 6 dim: 8 } } }
        layer { name: "pool" type: "Pooling" bottom: "data" top: "pool" top: "pool_mask"
                pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
        layer { name: "up" type: "Upsample" bottom: "pool" bottom: "pool_mask" top: "up"
                upsample_param { scale: 2 } }
    """)
    path = tmp_path / "segnet.prototxt"
    path.write_text(net_text)
    net = c2t.load_net(path)
    x = torch.randn(1, 2, 6, 8)
    up = net(data=x)["up"]
    pooled, idx = torch.nn.functional.max_pool2d(x, 2, 2, return_indices=True)
    want = torch.nn.functional.max_unpool2d(pooled, idx, 2, 2, output_size=(6, 8))
    torch.testing.assert_close(up, want)


def test_refusals() -> None:
    with pytest.raises(BuildError, match="pad_out_h requires"):
        build(text("scale: 3 pad_out_h: true"), [(1, 1, 2, 2)] * 2)
    with pytest.raises(BuildError, match="same shape"):
        build(text("scale: 2"), [(1, 1, 2, 2), (1, 1, 2, 3)])
    m = build(text("scale: 2"), [(1, 1, 2, 2)] * 2)
    with pytest.raises(BuildError, match="out of range"):
        m(torch.ones(1, 1, 2, 2), torch.full((1, 1, 2, 2), 16.0))
