"""LSTM (Caffe's RecurrentLayer): blobs, static input, cont resets, kept state, expose_hidden."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from caffe2torch.errors import BuildError
from tests.layers.helpers_core import build, golden_params, run_golden, top_shapes

H = 4


def text(bottoms=("x", "cont"), tops=("h",), expose=False):
    parts = ['type: "LSTM"', *(f'bottom: "{b}"' for b in bottoms), *(f'top: "{t}"' for t in tops)]
    parts.append(f"recurrent_param {{ num_output: {H} expose_hidden: {str(expose).lower()} "
                 'weight_filler { type: "uniform" min: -0.5 max: 0.5 } '
                 'bias_filler { type: "uniform" min: -0.1 max: 0.1 } }')
    return " ".join(parts)


def sigmoid(v):
    return 1 / (1 + np.exp(-v))


def reference(blobs, x, cont, x_static=None, h0=None, c0=None):
    """The unrolled Caffe net written out step by step in float64."""
    w_xc, b_c = blobs[0], blobs[1]
    w_hc = blobs[-1]
    steps, n = x.shape[:2]
    h = np.zeros((n, H)) if h0 is None else h0[0]
    c = np.zeros((n, H)) if c0 is None else c0[0]
    out = []
    for t in range(steps):
        gates = (h * cont[t][:, None]) @ w_hc.T + x[t].reshape(n, -1) @ w_xc.T + b_c
        if x_static is not None:
            gates = gates + x_static.reshape(n, -1) @ blobs[2].T
        i, f, o, g = (gates[:, k * H : (k + 1) * H] for k in range(4))
        c = cont[t][:, None] * sigmoid(f) * c + sigmoid(i) * np.tanh(g)
        h = sigmoid(o) * np.tanh(c)
        out.append(h)
    return np.stack(out), h, c


def numpy_blobs(module):
    return [b.detach().double().numpy() for b in module.blobs]


@golden_params("LSTM")
def test_golden(case_dir):
    run_golden(case_dir)


def test_blob_order_and_shapes():
    plain = build(text(), [(3, 2, 5), (3, 2)])
    assert [tuple(b.shape) for b in plain.blobs] == [(16, 5), (16,), (16, 4)]
    static = build(text(("x", "cont", "s")), [(3, 2, 5), (3, 2), (2, 6)])
    assert [tuple(b.shape) for b in static.blobs] == [(16, 5), (16,), (16, 6), (16, 4)]
    assert top_shapes(plain, [(3, 2, 5), (3, 2)]) == [(3, 2, 4)]


def test_forward_with_static_input_and_resets():
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, size=(4, 3, 2, 2))  # trailing axes are flattened (axis 2)
    cont = np.array([[0, 0, 0], [1, 1, 0], [1, 0, 1], [1, 1, 1]], np.float64)
    x_static = rng.uniform(-1, 1, size=(3, 5))
    module = build(text(("x", "cont", "s")), [x.shape, cont.shape, x_static.shape])
    h = module(*(torch.tensor(v, dtype=torch.float32) for v in (x, cont, x_static)))
    want, _, _ = reference(numpy_blobs(module), x, cont, x_static)
    np.testing.assert_allclose(h.detach().numpy(), want, rtol=1e-5, atol=1e-6)


def test_gradients_equal_autograd_of_the_unrolled_net():
    module = build(text(("x", "cont", "s")), [(3, 2, 3), (3, 2), (2, 2)]).double()
    x = torch.randn(3, 2, 3, dtype=torch.float64, requires_grad=True)
    xs = torch.randn(2, 2, dtype=torch.float64, requires_grad=True)
    cont = torch.tensor([[0.0, 1.0], [1.0, 0.0], [1.0, 1.0]], dtype=torch.float64)

    def run(x_, xs_, *params):
        for blob, p in zip(module.blobs, params):
            blob.data = p.detach()
        module.reset_state()
        return torch.func.functional_call(
            module, {f"blobs.{i}": p for i, p in enumerate(params)}, (x_, cont, xs_))

    params = [b.detach().clone().requires_grad_(True) for b in module.blobs]
    assert torch.autograd.gradcheck(run, (x, xs, *params))


def test_state_is_kept_between_forwards_unless_cont_is_zero():
    module = build(text(), [(2, 1, 3), (2, 1)])
    x = torch.randn(2, 1, 3)
    keep = torch.ones(2, 1)
    first = module(x, keep)
    second = module(x, keep)
    assert not torch.allclose(first, second)
    blobs = numpy_blobs(module)
    _, h1, c1 = reference(blobs, x.double().numpy(), keep.numpy())
    want, _, _ = reference(blobs, x.double().numpy(), keep.numpy(), h0=h1[None], c0=c1[None])
    np.testing.assert_allclose(second.detach().numpy(), want, rtol=1e-5, atol=1e-6)
    module.reset_state()
    torch.testing.assert_close(module(x, keep), first)
    reset = torch.tensor([[0.0], [1.0]])
    torch.testing.assert_close(module(x, reset), module(x, reset))


def test_expose_hidden_uses_given_state_and_blocks_its_gradients():
    bottoms, tops = ("x", "cont", "h0", "c0"), ("h", "hT", "cT")
    module = build(text(bottoms, tops, expose=True),
                   [(3, 2, 3), (3, 2), (1, 2, H), (1, 2, H)])
    x = torch.randn(3, 2, 3, requires_grad=True)
    h0 = torch.randn(1, 2, H, requires_grad=True)
    c0 = torch.randn(1, 2, H, requires_grad=True)
    cont = torch.ones(3, 2)
    h, h_t, c_t = module(x, cont, h0, c0)
    want, want_h, want_c = reference(numpy_blobs(module), x.detach().double().numpy(),
                                     cont.numpy(), h0=h0.detach().double().numpy(),
                                     c0=c0.detach().double().numpy())
    np.testing.assert_allclose(h.detach().numpy(), want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(h_t[0].numpy(), want_h, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(c_t[0].numpy(), want_c, rtol=1e-5, atol=1e-6)
    assert not h_t.requires_grad and not c_t.requires_grad
    h.sum().backward()
    assert not h0.grad.any() and not c0.grad.any() and x.grad.abs().sum() > 0
    # No state is kept with expose_hidden: the same call gives the same answer.
    torch.testing.assert_close(module(x, cont, h0, c0)[0], h)


def test_bad_bottoms_are_build_errors():
    with pytest.raises(BuildError, match="cont"):
        build(text(), [(3, 2, 5), (3, 1)])
    with pytest.raises(BuildError, match="top"):
        build(text(("x", "cont", "h0", "c0"), ("h",), expose=True),
              [(3, 2, 5), (3, 2), (1, 2, H), (1, 2, H)])
    with pytest.raises(BuildError, match="exposed state"):
        build(text(("x", "cont", "h0", "c0"), ("h", "hT", "cT"), expose=True),
              [(3, 2, 5), (3, 2), (1, 2, H + 1), (1, 2, H)])
