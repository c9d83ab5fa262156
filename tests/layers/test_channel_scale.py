"""ChannelScale (happynear/caffe-windows, AM-Softmax): hand-computed numbers, the fork's
gradient for each flag, gradcheck, shape checks, and the AM-Softmax tail exported to ONNX."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import caffe2torch as c2t
from caffe2torch.errors import BuildError
from caffe2torch.ir.shapes import channel_scale_mismatch
from tests.layers.helpers_core import build


def make(shapes: list[tuple[int, ...]], fields: str = ""):
    return build(f"""name: "s" type: "ChannelScale" bottom: "x" bottom: "norm" top: "y"
        channel_scale_param {{ {fields} }}""", shapes)


def test_forward_by_hand() -> None:
    # 2 items x 3 channels x (1 x 2) positions; scale[n, s] multiplies every channel.
    m = make([(2, 3, 1, 2), (2, 1, 1, 2)])
    x = torch.arange(12, dtype=torch.float32).reshape(2, 3, 1, 2)
    s = torch.tensor([2.0, -1.0, 0.5, 3.0]).reshape(2, 1, 1, 2)
    expected = torch.tensor([
        [[[0.0, -1.0]], [[4.0, -3.0]], [[8.0, -5.0]]],
        [[[3.0, 21.0]], [[4.0, 27.0]], [[5.0, 33.0]]],
    ])
    torch.testing.assert_close(m(x, s), expected)


def test_scores_times_norm_as_amsoftmax_uses_it() -> None:
    # AM-Softmax: fc6_margin (N x classes) times feature_norm (N x 1).
    m = make([(2, 3), (2, 1)])
    out = m(torch.tensor([[0.5, -0.25, 1.0], [2.0, 0.0, -1.0]]), torch.tensor([[4.0], [0.5]]))
    torch.testing.assert_close(out, torch.tensor([[2.0, -1.0, 4.0], [1.0, 0.0, -0.5]]))


def _grads(fields: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    m = make([(2, 3, 2), (2, 2)], fields)
    x = torch.tensor([[[1.0, 2.0], [3.0, -1.0], [0.5, 0.0]],
                      [[-2.0, 1.0], [1.0, 1.0], [4.0, 2.0]]], requires_grad=True)
    s = torch.tensor([[2.0, -3.0], [0.5, 1.0]], requires_grad=True)
    y = m(x, s)
    y.backward(torch.ones_like(y))
    assert x.grad is not None and s.grad is not None
    return y.detach(), x.grad, s.grad


def test_backward_by_hand() -> None:
    y, dx, ds = _grads("")
    # dtop = 1: dx[n, c, s] = scale[n, s]; dscale[n, s] = sum_c x[n, c, s]
    torch.testing.assert_close(dx, torch.tensor([[[2.0, -3.0]] * 3, [[0.5, 1.0]] * 3]))
    torch.testing.assert_close(ds, torch.tensor([[4.5, 1.0], [3.0, 4.0]]))
    torch.testing.assert_close(y[0, 1], torch.tensor([6.0, 3.0]))


def test_flags_follow_the_fork() -> None:
    y, dx, ds = _grads("do_forward: false")
    # the top is a copy, yet the gradients still use the scale
    torch.testing.assert_close(y[1, 2], torch.tensor([4.0, 2.0]))
    torch.testing.assert_close(ds, torch.tensor([[4.5, 1.0], [3.0, 4.0]]))
    torch.testing.assert_close(dx[0, 0], torch.tensor([2.0, -3.0]))
    _, dx, ds = _grads("do_backward_feature: false do_backward_scale: false")
    torch.testing.assert_close(dx, torch.ones(2, 3, 2))
    torch.testing.assert_close(ds, torch.zeros(2, 2))


@pytest.mark.parametrize("fields", ["", "do_backward_feature: false", "do_forward: false"])
def test_gradcheck(fields: str) -> None:
    m = make([(2, 3, 2, 2), (2, 1, 2, 2)], fields)
    x = torch.randn(2, 3, 2, 2, dtype=torch.float64, requires_grad=True)
    s = torch.randn(2, 1, 2, 2, dtype=torch.float64, requires_grad=True)
    if fields == "":
        assert torch.autograd.gradcheck(m, (x, s))
        return
    # the fork's gradient is not the derivative of its forward with these flags: check the
    # scale gradient numerically against sum_c x * dtop
    y = m(x, s)
    g = torch.randn_like(y)
    y.backward(g)
    np.testing.assert_allclose(s.grad.numpy(), (x * g).sum(1, keepdim=True).detach().numpy())


def test_shape_checks() -> None:
    assert channel_scale_mismatch((4, 10), (4, 1)) is None
    assert channel_scale_mismatch((4, 10, 3, 3), (4, 9)) is None
    assert channel_scale_mismatch((4, 10, None, 3), (4, 1)) is None
    assert "one scale per item" in str(channel_scale_mismatch((4, 10), (4, 2)))
    assert "num 4" in str(channel_scale_mismatch((4, 10), (2, 2)))
    assert "at most 4 axes" in str(channel_scale_mismatch((1, 2, 3, 4, 5), (1,)))
    with pytest.raises(BuildError, match="one scale per item"):
        make([(4, 10), (4, 3)])


def test_global_scale_is_refused() -> None:
    with pytest.raises(BuildError, match="global_scale"):
        make([(4, 10), (4, 1)], "global_scale: true")


AMSOFTMAX_TAIL = """
name: "am_tail"
layer { name: "in" type: "Input" top: "feature" input_param { shape { dim: 2 dim: 4 } } }
layer { name: "norm" type: "Reduction" bottom: "feature" top: "sq"
        reduction_param { operation: SUMSQ axis: 1 } }
layer { name: "root" type: "Power" bottom: "sq" top: "feature_norm" power_param { power: 0.5 } }
layer { name: "fn" type: "Reshape" bottom: "feature_norm" top: "fn"
        reshape_param { shape { dim: -1 dim: 1 } } }
layer { name: "fc6" type: "InnerProduct" bottom: "feature" top: "fc6"
        inner_product_param { num_output: 3 normalize: true bias_term: false
                              weight_filler { type: "xavier" } } }
layer { name: "scale" type: "ChannelScale" bottom: "fc6" bottom: "fn" top: "fc6_scale" }
"""


def test_exports_to_onnx(tmp_path: Path) -> None:
    onnx = pytest.importorskip("onnx")
    from caffe2torch.export import export_onnx
    from caffe2torch.export.onnx import run_onnx

    path = tmp_path / "tail.prototxt"
    path.write_text(AMSOFTMAX_TAIL)
    net = c2t.load_net(path)
    out = tmp_path / "tail.onnx"
    export_onnx(net, out)
    onnx.checker.check_model(onnx.load(str(out)))
    feature = np.random.default_rng(0).normal(size=(2, 4)).astype(np.float32)
    (got,) = run_onnx(out, {"feature": feature})
    with torch.no_grad():
        want = net(feature=torch.from_numpy(feature))["fc6_scale"].numpy()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
