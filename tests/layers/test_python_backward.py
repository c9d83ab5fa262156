"""Python layers with and without their own backward: a layer whose class defines backward
is differentiable through it (pycaffe's diff conventions: top diffs in, bottom diffs out,
propagate_down per bottom); one without gets no gradient and a one-time note."""

from __future__ import annotations

import logging
import sys
import textwrap

import numpy as np
import pytest
import torch

import caffe2torch as c2t
from tests.layers.helpers_core import build

LAYERS = textwrap.dedent(
    """
    import numpy as np
    import caffe

    class EuclideanLossLayer(caffe.Layer):
        # pycaffe's examples/pycaffe/layers/pyloss.py, as people wrote it
        def setup(self, bottom, top):
            if len(bottom) != 2:
                raise Exception("Need two inputs to compute distance.")

        def reshape(self, bottom, top):
            self.diff = np.zeros_like(bottom[0].data, dtype=np.float32)
            top[0].reshape(1)

        def forward(self, bottom, top):
            self.diff[...] = bottom[0].data - bottom[1].data
            top[0].data[...] = np.sum(self.diff ** 2) / bottom[0].num / 2.

        def backward(self, top, propagate_down, bottom):
            for i in range(2):
                if not propagate_down[i]:
                    continue
                sign = 1 if i == 0 else -1
                bottom[i].diff[...] = sign * self.diff / bottom[i].num * top[0].diff

    class Cube(caffe.Layer):
        def setup(self, bottom, top):
            pass

        def reshape(self, bottom, top):
            top[0].reshape(*bottom[0].data.shape)

        def forward(self, bottom, top):
            top[0].data[...] = bottom[0].data ** 3

        def backward(self, top, propagate_down, bottom):
            bottom[0].diff[...] = 3 * bottom[0].data ** 2 * top[0].diff

    class ForwardOnly(caffe.Layer):
        def setup(self, bottom, top):
            pass

        def reshape(self, bottom, top):
            top[0].reshape(*bottom[0].data.shape)

        def forward(self, bottom, top):
            top[0].data[...] = 2 * bottom[0].data
    """
)


@pytest.fixture
def layers_module(tmp_path, monkeypatch):
    (tmp_path / "c2t_test_pybackward.py").write_text(LAYERS)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield
    sys.modules.pop("c2t_test_pybackward", None)


def text(cls: str, bottoms: int = 1) -> str:
    bottom = " ".join(f'bottom: "b{i}"' for i in range(bottoms))
    return (f'name: "py" type: "Python" {bottom} top: "t" '
            f'python_param {{ module: "c2t_test_pybackward" layer: "{cls}" }}')


ALLOW = {"allow_python_layers": True}


def test_user_backward_gives_the_gradient(layers_module) -> None:
    m = build(text("Cube"), [(2, 3)], options=ALLOW)
    assert m.differentiable
    x = torch.randn(2, 3, requires_grad=True)
    y = m(x)
    top_diff = torch.randn(2, 3)
    (y * top_diff).sum().backward()
    xn = x.detach().numpy()
    np.testing.assert_allclose(y.detach().numpy(), xn ** 3, rtol=1e-6)
    np.testing.assert_allclose(x.grad.numpy(), 3 * xn ** 2 * top_diff.numpy(), rtol=1e-5)


def test_pycaffe_euclidean_loss_with_propagate_down(layers_module) -> None:
    m = build(text("EuclideanLossLayer", 2), [(4, 3), (4, 3)], options=ALLOW)
    a = torch.randn(4, 3, requires_grad=True)
    b = torch.randn(4, 3)  # no gradient wanted: propagate_down[1] is False
    loss = m(a, b)
    (0.5 * loss.sum()).backward()
    diff = (a.detach() - b).numpy()
    assert float(loss.detach().sum()) == pytest.approx((diff ** 2).sum() / 4 / 2, rel=1e-5)
    np.testing.assert_allclose(a.grad.numpy(), diff / 4 * 0.5, rtol=1e-5)
    assert b.grad is None


def test_python_loss_trains_in_a_net(layers_module, tmp_path) -> None:
    net_text = textwrap.dedent("""
        layer { name: "in" type: "Input" top: "x" top: "y"
                input_param { shape { dim: 4 dim: 3 } shape { dim: 4 dim: 2 } } }
        layer { name: "ip" type: "InnerProduct" bottom: "x" top: "p"
                inner_product_param { num_output: 2 weight_filler { type: "xavier" } } }
        layer { name: "loss" type: "Python" bottom: "p" bottom: "y" top: "loss"
                python_param { module: "c2t_test_pybackward" layer: "EuclideanLossLayer" }
                loss_weight: 1 }
    """)
    path = tmp_path / "net.prototxt"
    path.write_text(net_text)
    net = c2t.load_net(path, phase="TRAIN", allow_python_layers=True)
    x, y = torch.randn(4, 3), torch.randn(4, 2)
    out = net(x=x, y=y)
    out["loss"].sum().backward()
    w = net.params["ip"][0]
    assert w.grad is not None and float(w.grad.abs().sum()) > 0
    # the same gradient as an EuclideanLoss computed by torch
    w2 = w.detach().clone().requires_grad_(True)
    p = x @ w2.T + net.params["ip"][1].detach()
    (((p - y) ** 2).sum() / 4 / 2).backward()
    np.testing.assert_allclose(w.grad.numpy(), w2.grad.numpy(), rtol=1e-5, atol=1e-7)


def test_forward_only_layer_notes_once(layers_module, caplog) -> None:
    caplog.set_level(logging.INFO, logger="caffe2torch.layers.bvlc.inputs")
    m = build(text("ForwardOnly"), [(2, 3)], options=ALLOW)
    build(text("ForwardOnly"), [(2, 3)], options=ALLOW)
    assert not m.differentiable
    notes = [r for r in caplog.records if "defines no backward" in r.getMessage()]
    assert len(notes) == 1
    x = torch.randn(2, 3, requires_grad=True)
    y = m(x)
    torch.testing.assert_close(y, 2 * x.detach())
    assert not y.requires_grad
