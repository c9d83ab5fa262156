"""Pooling: Caffe's output size rule, MAX/AVE windows and divisors, argmax top, STOCHASTIC."""

import numpy as np
import pytest
import torch

from caffe2torch.errors import BuildError
from caffe2torch.layers import find_layer_spec
from caffe2torch.layers.bvlc.vision import PoolGeometry, pooled_size
from tests.layers import vision_reference as ref
from tests.layers.helpers_core import build, golden_params, run_golden, top_shapes


@golden_params("Pooling")
def test_golden(case_dir):
    run_golden(case_dir)


@pytest.mark.parametrize("alias", ["POOLING", "pool"])
def test_v1_and_v0_names(alias):
    assert find_layer_spec(alias).type == "Pooling"


# (size, kernel, stride, pad, ceil) -> Caffe's pooled size, worked out by hand from
# PoolingLayer::Reshape.
SIZE_TABLE = [
    (7, 2, 2, 0, True, 4),  # ceil((7-2)/2)+1 = 4: last window clipped
    (7, 2, 2, 0, False, 3),
    (8, 3, 2, 1, True, 5),  # ceil(7/2)+1 = 5; last starts at 8-1 = 7 < 9: kept
    (8, 3, 2, 1, False, 4),
    (4, 2, 3, 1, True, 2),  # ceil(4/3)+1 = 3, but 2*3 >= 4+1: dropped
    (6, 3, 2, 1, True, 4),  # ceil(5/2)+1 = 4, 3*2 = 6 < 7: kept (beyond the padding)
    (227, 3, 2, 0, True, 113),  # CaffeNet pool1
    (55, 3, 2, 0, True, 27),
    (13, 3, 2, 0, True, 6),
    (112, 3, 2, 0, True, 56),  # GoogLeNet pool1 (ceil): torch floor would give 55
    (112, 3, 2, 0, False, 55),
    (5, 1, 3, 0, True, 3),  # kernel < stride without padding: the last window is empty
    (14, 2, 2, 0, True, 7),
    (5, 5, 1, 2, True, 5),
]


@pytest.mark.parametrize("size,kernel,stride,pad,ceil,expected", SIZE_TABLE)
def test_output_size_table(size, kernel, stride, pad, ceil, expected):
    assert pooled_size(size, kernel, stride, pad, ceil) == expected
    assert ref.pooled_size(size, kernel, stride, pad, ceil) == expected


def _pool_text(method, k, s, p, extra=""):
    return (
        f'name: "p" type: "Pooling" bottom: "x" top: "y" {extra}'
        f"pooling_param {{ pool: {method} kernel_h: {k[0]} kernel_w: {k[1]} "
        f"stride_h: {s[0]} stride_w: {s[1]} pad_h: {p[0]} pad_w: {p[1]} }}"
    )


GEOMETRIES = [
    # (input hw, kernel, stride, pad): native torch path and the explicit-padding path
    ((7, 7), (2, 2), (2, 2), (0, 0)),
    ((8, 8), (3, 3), (2, 2), (1, 1)),
    ((6, 6), (3, 3), (2, 2), (1, 1)),
    ((4, 4), (2, 2), (3, 3), (1, 1)),
    ((9, 7), (3, 2), (2, 1), (1, 0)),
    ((7, 6), (3, 3), (2, 2), (2, 2)),  # pad > kernel / 2: torch refuses, explicit padding
    ((6, 5), (5, 4), (3, 2), (3, 3)),
    ((5, 5), (5, 5), (1, 1), (2, 2)),
]


@pytest.mark.parametrize("method", ["MAX", "AVE"])
@pytest.mark.parametrize("hw,k,s,p", GEOMETRIES)
def test_forward_and_backward_match_caffe_loops(method, hw, k, s, p):
    rng = np.random.default_rng(3)
    x = rng.normal(size=(2, 3, *hw)).astype(np.float32)
    module = build(_pool_text(method, k, s, p), [x.shape])
    xt = torch.tensor(x, requires_grad=True)
    y = module(xt)
    expected, mask = ref.pool_forward(x, method.lower(), k, s, p)
    np.testing.assert_allclose(y.detach().numpy(), expected, rtol=1e-6, atol=1e-6)
    g = rng.normal(size=expected.shape).astype(np.float32)
    y.backward(torch.tensor(g))
    want = ref.pool_backward(x.shape, g, method.lower(), k, s, p, mask)
    np.testing.assert_allclose(xt.grad.numpy(), want, rtol=1e-5, atol=1e-6)
    assert top_shapes(module, [x.shape]) == [expected.shape]


@pytest.mark.parametrize("hw,k,s,p", GEOMETRIES)
def test_max_second_top_is_the_argmax_index(hw, k, s, p):
    x = np.random.default_rng(5).normal(size=(1, 2, *hw)).astype(np.float32)
    module = build(_pool_text("MAX", k, s, p).replace('top: "y"', 'top: "y" top: "m"'), [x.shape])
    y, m = module(torch.tensor(x))
    expected, mask = ref.pool_forward(x, "max", k, s, p)
    np.testing.assert_array_equal(m.numpy(), mask.astype(np.float32))
    assert m.dtype == torch.float32 and not m.requires_grad
    np.testing.assert_array_equal(y.numpy(), expected)


def test_max_ties_pick_the_first_position():
    x = torch.ones(1, 1, 4, 4)
    _, m = build(
        _pool_text("MAX", (2, 2), (2, 2), (0, 0)).replace('top: "y"', 'top: "y" top: "m"'),
        [x.shape],
    )(x)
    np.testing.assert_array_equal(m.numpy().ravel(), [0, 2, 8, 10])


def test_empty_last_window_without_padding():
    # kernel 1 < stride 3 on 5 columns: ceil gives 3 windows, the last starts at 6 > 4.
    x = np.arange(10, dtype=np.float32).reshape(1, 1, 2, 5)
    module = build(
        _pool_text("MAX", (1, 1), (1, 3), (0, 0)).replace('top: "y"', 'top: "y" top: "m"'),
        [x.shape],
    )
    y, m = module(torch.tensor(x))
    expected, mask = ref.pool_forward(x, "max", (1, 1), (1, 3), (0, 0))
    np.testing.assert_array_equal(y.numpy(), expected)
    np.testing.assert_array_equal(m.numpy(), mask)
    assert y[0, 0, 0, 2].item() == -ref.FLT_MAX and m[0, 0, 0, 2].item() == -1


def test_explicit_path_is_used_only_when_torch_differs():
    assert PoolGeometry.make((8, 8), (3, 3), (2, 2), (1, 1), True).torch_ceil_mode is True
    assert PoolGeometry.make((8, 8), (3, 3), (2, 2), (1, 1), False).torch_ceil_mode is False
    assert PoolGeometry.make((7, 6), (3, 3), (2, 2), (2, 2), True).torch_ceil_mode is None
    assert PoolGeometry.make((5, 5), (1, 1), (3, 3), (0, 0), True).torch_ceil_mode is None


def test_round_mode_floor():
    module = build(
        'name: "p" type: "Pooling" bottom: "x" top: "y" '
        "pooling_param { pool: AVE kernel_size: 3 stride: 2 pad: 1 round_mode: FLOOR }",
        [(1, 1, 8, 8)],
    )
    assert top_shapes(module, [(1, 1, 8, 8)]) == [(1, 1, 4, 4)]


@pytest.mark.parametrize("method", ["MAX", "AVE"])
def test_global_pooling_follows_the_input_size(method):
    module = build(
        f'name: "p" type: "Pooling" bottom: "x" top: "y" '
        f"pooling_param {{ pool: {method} global_pooling: true }}",
        [(2, 3, 5, 4)],
    )
    x = torch.randn(2, 3, 6, 7)
    y = module(x)
    want = x.amax(dim=(2, 3)) if method == "MAX" else x.mean(dim=(2, 3))
    torch.testing.assert_close(y[:, :, 0, 0], want)


def test_stochastic_test_phase_is_the_weighted_average():
    x = np.random.default_rng(7).uniform(-0.2, 1.0, size=(2, 3, 7, 6)).astype(np.float32)
    x[0, 0, :3, :3] = -1.0  # a window with a non-positive sum gives 0
    module = build(
        'name: "p" type: "Pooling" bottom: "x" top: "y" '
        "pooling_param { pool: STOCHASTIC kernel_size: 3 stride: 2 }",
        [x.shape],
    )
    y = module(torch.tensor(x))
    np.testing.assert_allclose(
        y.numpy(), ref.stochastic_test(x, (3, 3), (2, 2)), rtol=1e-5, atol=1e-6
    )
    assert y[0, 0, 0, 0].item() == 0.0


def test_stochastic_train_samples_in_proportion_to_the_values():
    torch.manual_seed(0)
    module = build(
        'name: "p" type: "Pooling" bottom: "x" top: "y" '
        "pooling_param { pool: STOCHASTIC kernel_size: 2 stride: 2 }",
        [(1, 1, 2, 2)],
        phase="TRAIN",
    )
    x = torch.tensor([1.0, 0.0, 3.0, 0.0]).reshape(1, 1, 2, 2).expand(4000, 1, 2, 2).contiguous()
    y = module(x)
    picked_three = (y == 3.0).float().mean().item()
    assert set(y.unique().tolist()) <= {1.0, 3.0}
    assert abs(picked_three - 0.75) < 0.03


def test_stochastic_train_gradient_goes_to_the_sampled_position():
    torch.manual_seed(1)
    module = build(
        'name: "p" type: "Pooling" bottom: "x" top: "y" '
        "pooling_param { pool: STOCHASTIC kernel_size: 3 stride: 2 }",
        [(2, 2, 7, 7)],
        phase="TRAIN",
    )
    x = torch.rand(2, 2, 7, 7, requires_grad=True)
    y = module(x)
    assert y.shape == (2, 2, 3, 3)
    y.sum().backward()
    # every window puts one unit of gradient on one of its own elements
    assert x.grad.sum().item() == pytest.approx(2 * 2 * 9)
    picked = x.detach()[x.grad > 0]
    assert torch.isin(y.detach().flatten(), picked).all()


@pytest.mark.parametrize(
    "text,message",
    [
        ("pool: MAX kernel_size: 3 pad: 3", "smaller than kernel"),
        ("pool: MAX global_pooling: true kernel_size: 2", "global_pooling"),
        ("pool: STOCHASTIC kernel_size: 3 pad: 1", "STOCHASTIC"),
        ("pool: MAX", "kernel_size"),
        ("pool: MAX kernel_size: 9", "larger than the input"),
    ],
)
def test_bad_parameters_are_build_errors(text, message):
    with pytest.raises(BuildError, match=message):
        build(
            f'name: "p" type: "Pooling" bottom: "x" top: "y" pooling_param {{ {text} }}',
            [(1, 1, 6, 6)],
        )


def test_second_top_only_for_max():
    with pytest.raises(BuildError, match="second"):
        build(
            'name: "p" type: "Pooling" bottom: "x" top: "y" top: "m" '
            "pooling_param { pool: AVE kernel_size: 2 }",
            [(1, 1, 4, 4)],
        )
