"""The CPU routes of layers/cpu_kernels.py against the plain torch routes they replace."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from caffe2torch.layers import cpu_kernels
from caffe2torch.layers.bvlc.vision import CaffeLRN, caffe_lrn, caffe_pool

MAX = 0

GEOMETRIES = [  # (shape, kernel, stride, pad): GoogLeNet's, AlexNet's, a rectangular one
    ((2, 8, 14, 14), (3, 3), (1, 1), (1, 1)),
    ((2, 6, 55, 55), (3, 3), (2, 2), (0, 0)),
    ((1, 5, 13, 11), (3, 2), (2, 1), (1, 0)),
    ((3, 4, 7, 7), (2, 2), (2, 2), (0, 0)),
]


@pytest.mark.parametrize(("shape", "kernel", "stride", "pad"), GEOMETRIES)
def test_max_pool_route_equals_torch_bit_for_bit(shape, kernel, stride, pad) -> None:
    # ReLU'd input: most windows hold ties of zeros, where Caffe's first argmax wins
    x0 = torch.relu(torch.randn(shape, generator=torch.Generator().manual_seed(3)))
    x = x0.clone().requires_grad_()
    top, index = cpu_kernels.max_pool_channels_last(x, kernel, stride, pad, True)
    ref_x = x0.clone().requires_grad_()
    ref_top, ref_index = F.max_pool2d(ref_x, kernel, stride, pad, ceil_mode=True,
                                      return_indices=True)
    assert top.is_contiguous()
    assert torch.equal(top, ref_top)
    assert torch.equal(index, ref_index)
    diff = torch.randn(top.shape, generator=torch.Generator().manual_seed(4))
    top.backward(diff)
    ref_top.backward(diff)
    assert x.grad is not None and ref_x.grad is not None
    assert x.grad.is_contiguous()
    assert torch.equal(x.grad, ref_x.grad)  # overlapping windows add in the same order


def test_pooling_layer_takes_the_route_and_keeps_its_mask() -> None:
    x = torch.relu(torch.randn(2, 3, 9, 9))
    with torch.no_grad():
        top, mask = caffe_pool(x, MAX, (3, 3), (2, 2), (0, 0), with_mask=True)
        ref_top, ref_index = F.max_pool2d(x, 3, 2, 0, ceil_mode=True, return_indices=True)
    assert torch.equal(top, ref_top)
    assert torch.equal(mask, ref_index.float())


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_routes_are_not_taken_when_traced_or_off_cpu() -> None:
    x = torch.randn(1, 2, 4, 4)
    assert cpu_kernels.eager_cpu(x)
    assert not cpu_kernels.eager_cpu(x.double())
    assert not cpu_kernels.eager_cpu(torch.empty(1, 2, 4, 4, device="meta"))
    seen = []

    def probe(t: torch.Tensor) -> torch.Tensor:
        seen.append(cpu_kernels.eager_cpu(t))
        return t * 2

    torch.jit.trace(probe, (x,), check_trace=False)  # as the ONNX exporter traces
    assert seen == [False]


@pytest.mark.parametrize("size", [1, 3, 5, 7])
def test_lrn_route_matches_the_autograd_route(size: int) -> None:
    x0 = torch.randn(2, 9, 6, 5, generator=torch.Generator().manual_seed(size))
    diff = torch.randn(2, 9, 6, 5, generator=torch.Generator().manual_seed(10 + size))
    x = x0.clone().requires_grad_()
    top = cpu_kernels.cross_channel_lrn(x, size, 0.3, 0.75, 2.0)
    top.backward(diff)
    ref_x = x0.clone().requires_grad_()
    ref = caffe_lrn(ref_x, size, 0.3, 0.75, 2.0, False)
    ref.backward(diff)
    assert x.grad is not None and ref_x.grad is not None
    torch.testing.assert_close(top, ref, rtol=2e-6, atol=1e-7)
    torch.testing.assert_close(x.grad, ref_x.grad, rtol=2e-5, atol=1e-6)
    with torch.no_grad():
        torch.testing.assert_close(cpu_kernels.cross_channel_lrn(x0, size, 0.3, 0.75, 2.0),
                                   ref, rtol=2e-6, atol=1e-7)


def test_lrn_backward_is_the_exact_gradient() -> None:
    # Caffe's hand-written CrossChannelBackward, checked by finite differences in float64
    x = torch.randn(1, 6, 3, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda t: cpu_kernels._CrossChannelLRN.apply(t, 5, 0.7, 0.75, 1.5), (x,))


def test_lrn_module_uses_the_route_only_across_channels() -> None:
    x = torch.randn(1, 4, 5, 5) + 1
    across = CaffeLRN(3, 0.5, 0.75, 1.0, within=False)
    within = CaffeLRN(3, 0.5, 0.75, 1.0, within=True)
    torch.testing.assert_close(across(x), caffe_lrn(x, 3, 0.5, 0.75, 1.0, False))
    assert torch.equal(within(x), caffe_lrn(x, 3, 0.5, 0.75, 1.0, True))


def _big_weight() -> torch.Tensor:
    n, k = 520, cpu_kernels.SKINNY_WEIGHT // 500  # a few rows past a block edge
    return torch.randn(n, k, generator=torch.Generator().manual_seed(7)) * 0.01


@pytest.mark.parametrize("rows", [2, 3, cpu_kernels.SKINNY_ROWS])
def test_small_batch_inner_product_route(rows: int) -> None:
    weight = _big_weight()
    x = torch.randn(rows, weight.shape[1])
    grad = torch.randn(rows, weight.shape[0])
    bias = torch.randn(weight.shape[0])
    assert cpu_kernels.skinny(x, weight)
    for other in (1, cpu_kernels.SKINNY_ROWS + 1):  # one row, or enough for torch's GEMM
        assert not cpu_kernels.skinny(torch.randn(other, weight.shape[1]), weight)
    assert not cpu_kernels.skinny(x, weight, cpu_kernels.SKINNY_GRAD_WEIGHT)
    torch.testing.assert_close(cpu_kernels.skinny_linear(x, weight, bias),
                               F.linear(x, weight, bias), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(cpu_kernels.skinny_input_grad(grad, weight), grad @ weight,
                               rtol=1e-5, atol=1e-5)


def test_inner_product_with_kept_diffs_takes_the_route_and_keeps_gradients(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from caffe2torch.layers.grad_buffers import GradBuffers, linear

    monkeypatch.setattr(cpu_kernels, "SKINNY_GRAD_WEIGHT", cpu_kernels.SKINNY_WEIGHT)
    calls: list[str] = []
    for name in ("skinny_linear", "skinny_input_grad"):
        real = getattr(cpu_kernels, name)
        monkeypatch.setattr(cpu_kernels, name,
                            lambda *a, _real=real, _name=name: calls.append(_name) or _real(*a))

    weight = nn.Parameter(_big_weight())
    bias = nn.Parameter(torch.zeros(weight.shape[0]))
    x0 = torch.randn(4, weight.shape[1])
    ref_x = x0.clone().requires_grad_()
    ref_w = nn.Parameter(weight.detach().clone())
    F.linear(ref_x, ref_w, bias.detach()).square().sum().backward()
    x = x0.clone().requires_grad_()
    store = GradBuffers([weight, bias])
    with store.active():
        linear(x, weight, bias).square().sum().backward()
    assert calls == ["skinny_linear", "skinny_input_grad"]
    assert x.grad is not None and ref_x.grad is not None and ref_w.grad is not None
    torch.testing.assert_close(x.grad, ref_x.grad, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(weight.grad, ref_w.grad, rtol=1e-4, atol=1e-5)
    with torch.no_grad():  # inference takes the route through the plain entry too
        torch.testing.assert_close(linear(x0, weight, bias), F.linear(x0, weight, bias),
                                   rtol=1e-5, atol=1e-5)


def test_lrn_route_with_fewer_channels_than_the_window() -> None:
    x0 = torch.randn(1, 2, 3, 3)
    x = x0.clone().requires_grad_()
    ref_x = x0.clone().requires_grad_()
    top = cpu_kernels.cross_channel_lrn(x, 5, 0.5, 0.75, 1.0)
    ref = caffe_lrn(ref_x, 5, 0.5, 0.75, 1.0, False)
    top.sum().backward()
    ref.sum().backward()
    torch.testing.assert_close(top, ref)
    torch.testing.assert_close(x.grad, ref_x.grad)


def test_channels_last_input_keeps_its_layout_through_pooling() -> None:
    x = torch.relu(torch.randn(2, 8, 9, 9)).contiguous(memory_format=torch.channels_last)
    (top,) = caffe_pool(x, MAX, (3, 3), (2, 2), (0, 0))
    assert top.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(top, F.max_pool2d(x.contiguous(), 3, 2, 0, ceil_mode=True))


@pytest.mark.parametrize(("size", "stride", "group"), [((7, 7), (2, 2), 1), ((9, 6), (3, 2), 2)])
def test_strided_pointwise_convolution_reads_the_same_pixels(size, stride, group) -> None:
    from caffe2torch.ir.geometry import ConvGeometry
    from caffe2torch.layers.bvlc.vision import CaffeConvolution

    weight = torch.randn(6, 4 // group, 1, 1)
    bias = torch.randn(6)
    geometry = ConvGeometry((1, 1), stride, (0, 0), (1, 1))
    conv = CaffeConvolution(weight, bias, geometry, group, 1, False)
    x0 = torch.randn(2, 4, *size)
    assert cpu_kernels.strided_pointwise(x0, (1, 1), stride, (0, 0))
    assert not cpu_kernels.strided_pointwise(x0, (1, 1), stride, (1, 0))
    assert not cpu_kernels.strided_pointwise(x0, (3, 3), stride, (0, 0))
    x = x0.clone().requires_grad_()
    top = conv(x)
    ref_x = x0.clone().requires_grad_()
    ref = F.conv2d(ref_x, weight, bias, stride, 0, 1, group)
    assert top.shape == ref.shape
    torch.testing.assert_close(top, ref)
    diff = torch.randn(ref.shape)
    top.backward(diff)
    ref.backward(diff)
    torch.testing.assert_close(x.grad, ref_x.grad)


def test_subsampling_keeps_a_channels_last_layout() -> None:
    x = torch.randn(2, 3, 8, 8).contiguous(memory_format=torch.channels_last)
    picked = cpu_kernels.subsample(x, (2, 2))
    assert picked.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(picked, x[:, :, ::2, ::2])
    assert cpu_kernels.subsample(x.contiguous(), (2, 2)).is_contiguous()
