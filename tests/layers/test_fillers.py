"""Fillers: shapes, Caffe's fan rules and the distributions' statistics."""

import math

import numpy as np
import pytest
import torch

from caffe2torch.errors import BuildError
from caffe2torch.layers.fillers import fans, fill, make_filled
from caffe2torch.proto import caffe_pb2
from tests.layers.helpers_core import build


def _filler(**fields):
    f = caffe_pb2.FillerParameter()
    for key, value in fields.items():
        setattr(f, key, value)
    return f


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize(
    "shape,fan_in,fan_out",
    [((64, 3, 5, 5), 75, 1600), ((10, 20), 20, 10), ((7,), 1, 7), ((4, 6, 1, 1), 6, 4)],
)
def test_fan_rules(shape, fan_in, fan_out):
    assert fans(shape) == (fan_in, fan_out)


def test_default_is_constant_zero():
    out = make_filled((2, 3))
    assert out.dtype == torch.float32 and out.shape == (2, 3) and not out.any()
    assert make_filled((2, 3), caffe_pb2.FillerParameter()).abs().sum() == 0


def test_constant():
    torch.testing.assert_close(
        make_filled((3, 2), _filler(type="constant", value=0.25)), torch.full((3, 2), 0.25)
    )


def test_uniform_range_and_mean():
    out = make_filled((200, 100), _filler(type="uniform", min=-2.0, max=4.0), _gen())
    assert out.min() >= -2.0 and out.max() < 4.0
    assert abs(out.mean().item() - 1.0) < 0.05


def test_gaussian_moments():
    out = make_filled((300, 100), _filler(type="gaussian", mean=0.5, std=2.0), _gen())
    assert abs(out.mean().item() - 0.5) < 0.05
    assert abs(out.std().item() - 2.0) < 0.05


def test_gaussian_sparse_keeps_sparse_over_num_outputs():
    out = make_filled((40, 5000), _filler(type="gaussian", std=1.0, sparse=10), _gen())
    assert abs((out != 0).float().mean().item() - 10 / 40) < 0.01


def test_positive_unitball_rows_sum_to_one():
    out = make_filled((6, 3, 4), _filler(type="positive_unitball"), _gen())
    assert (out >= 0).all() and (out <= 1).all()
    torch.testing.assert_close(out.reshape(6, -1).sum(1), torch.ones(6))


@pytest.mark.parametrize(
    "norm,n", [("FAN_IN", 3 * 5 * 5), ("FAN_OUT", 64 * 5 * 5), ("AVERAGE", (75 + 1600) / 2)]
)
def test_xavier_bound_and_variance(norm, n):
    f = _filler(type="xavier", variance_norm=caffe_pb2.FillerParameter.VarianceNorm.Value(norm))
    out = make_filled((64, 3, 5, 5), f, _gen())
    bound = math.sqrt(3.0 / n)
    assert out.abs().max() <= bound and out.abs().max() > 0.95 * bound
    assert abs(out.var().item() * n - 1.0) < 0.1


@pytest.mark.parametrize("norm,n", [("FAN_IN", 3 * 5 * 5), ("FAN_OUT", 64 * 5 * 5)])
def test_msra_std(norm, n):
    f = _filler(type="msra", variance_norm=caffe_pb2.FillerParameter.VarianceNorm.Value(norm))
    out = make_filled((64, 3, 5, 5), f, _gen())
    assert abs(out.mean().item()) < 0.05 * math.sqrt(2.0 / n)
    assert abs(out.std().item() / math.sqrt(2.0 / n) - 1.0) < 0.05


@pytest.mark.parametrize("k", [2, 3, 4, 5])
def test_bilinear_matches_caffe_formula(k):
    out = make_filled((2, 1, k, k), _filler(type="bilinear"))
    f = np.float32(math.ceil(k / 2.0))
    c = np.float32((k - 1) / (2.0 * f))
    want = np.empty((k, k), np.float32)
    for i in range(k * k):
        x, y = np.float32(i % k), np.float32((i // k) % k)
        want.flat[i] = (1 - abs(x / f - c)) * (1 - abs(y / f - c))
    np.testing.assert_array_equal(out[0, 0].numpy(), want)
    np.testing.assert_array_equal(out[1, 0].numpy(), want)


def test_bilinear_needs_square_4d():
    with pytest.raises(BuildError, match="bilinear"):
        make_filled((3, 4), _filler(type="bilinear"))


def test_generator_makes_it_reproducible():
    f = _filler(type="xavier")
    torch.testing.assert_close(make_filled((5, 7), f, _gen(3)), make_filled((5, 7), f, _gen(3)))
    torch.testing.assert_close(fill(f, (5, 7), generator=_gen(3)), make_filled((5, 7), f, _gen(3)))


@pytest.mark.parametrize(
    "fields,message",
    [
        ({"type": "orthogonal"}, "unknown filler"),
        ({"type": "xavier", "sparse": 3}, "sparse"),
        ({"type": "gaussian", "sparse": 50}, "exceeds"),
        ({"type": "uniform", "min": 2, "max": 1}, "min"),
    ],
)
def test_bad_fillers_are_build_errors(fields, message):
    with pytest.raises(BuildError, match=message):
        make_filled((4, 3), _filler(**fields))


def test_builders_use_the_generator_option():
    text = (
        'name: "c" type: "Convolution" bottom: "x" top: "y" convolution_param { num_output: 4 '
        "kernel_size: 3 weight_filler { type: 'msra' } bias_filler { type: 'gaussian' } }"
    )
    a = build(text, [(1, 2, 5, 5)], options={"generator": _gen(9)})
    b = build(text, [(1, 2, 5, 5)], options={"generator": _gen(9)})
    for x, y in zip(a.blobs, b.blobs):
        torch.testing.assert_close(x, y)
    assert a.blobs[1].detach().abs().sum() > 0


def test_gaussian_unitball_is_a_normalised_gaussian_draw():
    # NormFace's filler: N(0, 1), then each of the shape[0] rows scaled to unit length.
    shape = (6, 2, 3)
    got = make_filled(shape, _filler(type="gaussian_unitball"), _gen(3))
    raw = torch.empty(shape).normal_(0.0, 1.0, generator=_gen(3)).double().numpy()
    rows = raw.reshape(6, -1)
    want = rows / np.sqrt((rows * rows).sum(axis=1, keepdims=True) + 1e-12)
    np.testing.assert_allclose(got.numpy().reshape(6, -1), want, rtol=1e-6)
    with pytest.raises(BuildError, match="sparse"):
        make_filled((2, 3), _filler(type="gaussian_unitball", sparse=1))
