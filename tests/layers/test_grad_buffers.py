"""Persistent gradient buffers: in-place weight gradients equal autograd's, buffers kept."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from caffe2torch.layers import grad_buffers as gb


def _grads(fn, params, store=None):
    for p in params:
        p.grad = None
    if store is None:
        fn().backward()
    else:
        with store.active():
            fn().backward()
    return [p.grad.clone() for p in params]


@pytest.mark.parametrize("transpose", [False, True])
def test_linear_gradients_equal_autograd_shared_use(transpose: bool) -> None:
    torch.manual_seed(0)
    w = torch.nn.Parameter(torch.randn((7, 5) if transpose else (5, 7)))
    b = torch.nn.Parameter(torch.randn(5))
    x = torch.randn(2, 3, 7, requires_grad=True)  # axis 2: leading dims flattened

    def loss() -> torch.Tensor:  # the weight used twice, as a Siamese net's shared fc
        y = gb.linear(x, w, b, transpose)
        z = gb.linear(x * 2, w, b, transpose)
        return y.sin().sum() + z.cos().sum()

    ref = _grads(loss, [w, b, x])
    store = gb.GradBuffers([w])
    got = _grads(loss, [w, b, x], store)
    for r, g in zip(ref, got):
        torch.testing.assert_close(g, r, rtol=1e-5, atol=1e-5)
    assert store.allocations == 1


def test_buffer_is_kept_across_clears_and_accumulates() -> None:
    torch.manual_seed(0)
    w = torch.nn.Parameter(torch.randn(4, 6))
    x = torch.randn(3, 6)
    store = gb.GradBuffers([w])
    with store.active():
        gb.linear(x, w, None).sum().backward()
    first = w.grad
    once = first.clone()
    w.grad = None  # Solver::ClearParamDiffs
    with store.active():
        gb.linear(x, w, None).sum().backward()  # overwrites the stale buffer
        gb.linear(x, w, None).sum().backward()  # iter_size 2: accumulates
    assert w.grad is first and store.allocations == 1
    torch.testing.assert_close(w.grad, 2 * once)


def test_release_unkept_keeps_summing_as_caffe_time_does() -> None:
    torch.manual_seed(0)
    w = torch.nn.Parameter(torch.randn(4, 6))  # an InnerProduct weight: kept buffer
    k = torch.nn.Parameter(torch.randn(4, 6))  # a param autograd hands a fresh gradient
    x = torch.randn(3, 6)
    store = gb.GradBuffers([w, k])

    def passes(n: int) -> None:
        for _ in range(n):
            with store.active():
                (gb.linear(x, w, None).sum() + (x @ k.t()).sum()).backward()
            store.release_unkept([w, k])

    passes(1)
    once = w.grad.clone()
    assert k.grad is None
    passes(2)  # Caffe's `time`: Backward again without ClearParamDiffs
    assert k.grad is None and store.allocations == 1
    torch.testing.assert_close(w.grad, 3 * once)


def test_outside_an_active_store_autograd_owns_the_gradient() -> None:
    w = torch.nn.Parameter(torch.randn(4, 6))
    x = torch.randn(3, 6)
    store = gb.GradBuffers([w])
    (g,) = torch.autograd.grad(gb.linear(x, w, None).sum(), [w])  # pycaffe's backward
    torch.testing.assert_close(g, torch.ones(3, 4).t() @ x)
    with store.active():
        y = gb.linear(x, w, None).sum()
    y.backward()  # the graph run backward after the block: plain accumulation
    assert store.allocations == 0
    torch.testing.assert_close(w.grad, g)


def test_double_backward_gradients_equal_autograd() -> None:
    torch.manual_seed(0)
    w = torch.nn.Parameter(torch.randn(4, 6))
    x = torch.randn(3, 6, requires_grad=True)

    def loss() -> torch.Tensor:  # create_graph: the first backward hands W's grad on
        (gx,) = torch.autograd.grad(gb.linear(x, w, None).pow(2).sum(), [x],
                                    create_graph=True)
        return gx.sum()

    ref = _grads(loss, [w])
    got = _grads(loss, [w], gb.GradBuffers([w]))
    torch.testing.assert_close(got[0], ref[0])


def test_autocast_falls_back() -> None:
    w = torch.nn.Parameter(torch.randn(4, 6))
    store = gb.GradBuffers([w])
    with store.active():
        assert gb.writes_directly(w)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            assert not gb.writes_directly(w)
        with torch.no_grad():
            assert not gb.writes_directly(w)


def test_embedding_gradient_equals_autograd() -> None:
    torch.manual_seed(0)
    w = torch.nn.Parameter(torch.randn(10, 3))
    idx = torch.tensor([[1, 4, 1], [9, 0, 4]])

    def loss() -> torch.Tensor:
        return gb.embedding(idx, w).sin().sum() + gb.embedding(idx[:, :1], w).sum()

    ref = _grads(loss, [w])
    store = gb.GradBuffers([w])
    w.grad = torch.full_like(w, 7.0)  # a stale buffer is zeroed before the scatter
    got = _grads(loss, [w], store)
    torch.testing.assert_close(got[0], ref[0])
    torch.testing.assert_close(ref[0], _grads(lambda: F.embedding(idx, w).sin().sum()
                                              + F.embedding(idx[:, :1], w).sum(), [w])[0])
