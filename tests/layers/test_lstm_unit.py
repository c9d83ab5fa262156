"""LSTMUnit: gate order i, f, o, g; cont scales the forget gate; Caffe's backward."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from caffe2torch.errors import BuildError
from tests.layers.helpers_core import build, golden_params, run_golden

TEXT = 'type: "LSTMUnit" bottom: "c_prev" bottom: "x" bottom: "cont" top: "c" top: "h"'


def sigmoid(v):
    return 1 / (1 + np.exp(-v))


def reference(c_prev, x, cont):
    hidden = c_prev.shape[-1]
    i, f, o, g = (x[..., k * hidden : (k + 1) * hidden] for k in range(4))
    i, f, o, g = sigmoid(i), cont[..., None] * sigmoid(f), sigmoid(o), np.tanh(g)
    c = f * c_prev + i * g
    return c, o * np.tanh(c)


@golden_params("LSTMUnit")
def test_golden(case_dir):
    run_golden(case_dir)


def test_forward_matches_reference():
    rng = np.random.default_rng(4)
    c_prev = rng.uniform(-1, 1, size=(1, 3, 5))
    x = rng.uniform(-2, 2, size=(1, 3, 20))
    cont = np.array([[1.0, 0.0, 1.0]])
    module = build(TEXT, [c_prev.shape, x.shape, cont.shape])
    c, h = module(*(torch.tensor(v, dtype=torch.float32) for v in (c_prev, x, cont)))
    want_c, want_h = reference(c_prev, x, cont)
    np.testing.assert_allclose(c.numpy(), want_c, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(h.numpy(), want_h, rtol=1e-5, atol=1e-6)


def test_backward_equals_true_gradient_for_binary_cont():
    module = build(TEXT, [(1, 2, 3), (1, 2, 12), (1, 2)]).double()
    c_prev = torch.rand(1, 2, 3, dtype=torch.float64, requires_grad=True)
    x = torch.randn(1, 2, 12, dtype=torch.float64, requires_grad=True)
    cont = torch.tensor([[1.0, 0.0]], dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda a, b: module(a, b, cont), (c_prev, x))


def test_fractional_cont_uses_caffes_forget_gate_derivative():
    # Caffe: f = cont * sigmoid(x_f) and df = dc * c_prev * f * (1 - f).
    module = build(TEXT, [(1, 1, 1), (1, 1, 4), (1, 1)])
    x = torch.tensor([[[0.1, 0.3, -0.2, 0.4]]], requires_grad=True)
    c_prev = torch.tensor([[[0.7]]])
    c, _ = module(c_prev, x, torch.tensor([[0.5]]))
    c.backward(torch.ones_like(c))
    f = 0.5 * torch.sigmoid(torch.tensor(0.3))
    torch.testing.assert_close(x.grad[0, 0, 1], 0.7 * f * (1 - f))


def test_cont_gets_no_gradient():
    module = build(TEXT, [(1, 1, 2), (1, 1, 8), (1, 1)])
    cont = torch.ones(1, 1, requires_grad=True)
    c, h = module(torch.rand(1, 1, 2, requires_grad=True), torch.randn(1, 1, 8), cont)
    (c.sum() + h.sum()).backward()
    assert cont.grad is None


def test_bad_shapes_are_a_build_error():
    with pytest.raises(BuildError, match="c_prev"):
        build(TEXT, [(1, 2, 3), (1, 2, 10), (1, 2)])
