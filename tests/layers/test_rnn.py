"""RNN (Caffe's RecurrentLayer): blobs W_xh, b_h, [W_xh_static], W_hh, W_ho, b_o."""

from __future__ import annotations

import numpy as np
import torch

from tests.layers.helpers_core import build, golden_params, run_golden, top_shapes

H = 3


def text(bottoms=("x", "cont"), tops=("o",), expose=False):
    parts = ['type: "RNN"', *(f'bottom: "{b}"' for b in bottoms), *(f'top: "{t}"' for t in tops)]
    parts.append(f"recurrent_param {{ num_output: {H} expose_hidden: {str(expose).lower()} "
                 'weight_filler { type: "gaussian" std: 0.5 } '
                 'bias_filler { type: "uniform" min: -0.2 max: 0.2 } }')
    return " ".join(parts)


def reference(blobs, x, cont, x_static=None, h0=None):
    w_xh, b_h = blobs[0], blobs[1]
    w_hh, w_ho, b_o = blobs[-3:]
    steps, n = x.shape[:2]
    h = np.zeros((n, H)) if h0 is None else h0[0]
    outs = []
    for t in range(steps):
        pre = (h * cont[t][:, None]) @ w_hh.T + x[t].reshape(n, -1) @ w_xh.T + b_h
        if x_static is not None:
            pre = pre + x_static.reshape(n, -1) @ blobs[2].T
        h = np.tanh(pre)
        outs.append(np.tanh(h @ w_ho.T + b_o))
    return np.stack(outs), h


def numpy_blobs(module):
    return [b.detach().double().numpy() for b in module.blobs]


@golden_params("RNN")
def test_golden(case_dir):
    run_golden(case_dir)


def test_blob_order_and_shapes():
    module = build(text(("x", "cont", "s")), [(4, 2, 5), (4, 2), (2, 7)])
    assert [tuple(b.shape) for b in module.blobs] == [(3, 5), (3,), (3, 7), (3, 3), (3, 3), (3,)]
    assert top_shapes(module, [(4, 2, 5), (4, 2), (2, 7)]) == [(4, 2, 3)]


def test_forward_with_static_input_and_reset_mid_sequence():
    rng = np.random.default_rng(1)
    x = rng.uniform(-1, 1, size=(5, 2, 4))
    x_static = rng.uniform(-1, 1, size=(2, 3))
    cont = np.array([[0, 0], [1, 1], [1, 0], [0, 1], [1, 1]], np.float64)
    module = build(text(("x", "cont", "s")), [x.shape, cont.shape, x_static.shape])
    o = module(*(torch.tensor(v, dtype=torch.float32) for v in (x, cont, x_static)))
    want, _ = reference(numpy_blobs(module), x, cont, x_static)
    np.testing.assert_allclose(o.detach().numpy(), want, rtol=1e-5, atol=1e-6)


def test_gradients_equal_autograd_of_the_unrolled_net():
    module = build(text(), [(3, 2, 2), (3, 2)]).double()
    x = torch.randn(3, 2, 2, dtype=torch.float64, requires_grad=True)
    cont = torch.tensor([[0.0, 1.0], [1.0, 1.0], [0.0, 1.0]], dtype=torch.float64)

    def run(x_, *params):
        module.reset_state()
        return torch.func.functional_call(
            module, {f"blobs.{i}": p for i, p in enumerate(params)}, (x_, cont))

    params = [b.detach().clone().requires_grad_(True) for b in module.blobs]
    assert torch.autograd.gradcheck(run, (x, *params))


def test_state_is_kept_between_forwards():
    module = build(text(), [(2, 1, 2), (2, 1)])
    x = torch.randn(2, 1, 2)
    cont = torch.ones(2, 1)
    first, second = module(x, cont), module(x, cont)
    blobs = numpy_blobs(module)
    _, h1 = reference(blobs, x.double().numpy(), cont.numpy())
    want, _ = reference(blobs, x.double().numpy(), cont.numpy(), h0=h1[None])
    np.testing.assert_allclose(second.detach().numpy(), want, rtol=1e-5, atol=1e-6)
    module.reset_state()
    torch.testing.assert_close(module(x, cont), first)
    # A new batch size starts again from zeros.
    assert module(torch.randn(2, 3, 2), torch.ones(2, 3)).shape == (2, 3, 3)


def test_expose_hidden():
    module = build(text(("x", "cont", "h0"), ("o", "hT"), expose=True),
                   [(3, 2, 2), (3, 2), (1, 2, H)])
    x = torch.randn(3, 2, 2, requires_grad=True)
    h0 = torch.randn(1, 2, H, requires_grad=True)
    cont = torch.ones(3, 2)
    o, h_t = module(x, cont, h0)
    want, want_h = reference(numpy_blobs(module), x.detach().double().numpy(), cont.numpy(),
                             h0=h0.detach().double().numpy())
    np.testing.assert_allclose(o.detach().numpy(), want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(h_t[0].numpy(), want_h, rtol=1e-5, atol=1e-6)
    o.sum().backward()
    assert not h0.grad.any() and not h_t.requires_grad
