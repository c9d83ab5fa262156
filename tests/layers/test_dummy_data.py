"""DummyData: tops from fillers and shapes (also legacy num/channels/height/width), and the
fillers themselves."""

import math

import pytest
import torch

from caffe2torch.errors import BuildError
from caffe2torch.layers import find_layer_spec
from caffe2torch.layers.fillers import fill
from caffe2torch.proto import caffe_pb2
from tests.layers.helpers_core import build, golden_params, run_golden, top_shapes


@golden_params("DummyData")
def test_golden(case_dir):
    run_golden(case_dir)


def test_not_a_fed_data_layer():
    spec = find_layer_spec("DUMMY_DATA")
    assert spec.type == "DummyData" and not spec.data


def test_random_filler_refills_every_forward():
    m = build(
        'name: "d" type: "DummyData" top: "a" dummy_data_param { shape { dim: 1000 } '
        'data_filler { type: "uniform" min: -2 max: 3 } }'
    )
    a, b = m(), m()
    assert a.min() >= -2 and a.max() < 3 and not torch.equal(a, b)
    assert top_shapes(m, []) == [(1000,)]


def test_filler_count_must_fit_the_tops():
    with pytest.raises(BuildError, match="data_filler"):
        build(
            'name: "d" type: "DummyData" top: "a" top: "b" top: "c" dummy_data_param { '
            "shape { dim: 1 } data_filler { value: 1 } data_filler { value: 2 } }"
        )


def test_shape_and_legacy_together_are_refused():
    with pytest.raises(BuildError, match="not both"):
        build(
            'name: "d" type: "DummyData" top: "a" dummy_data_param { shape { dim: 1 } num: 2 '
            "channels: 1 height: 1 width: 1 }"
        )


def filler(**kw):
    return caffe_pb2.FillerParameter(**kw)


def test_gaussian_and_msra_statistics():
    torch.manual_seed(0)
    g = fill(filler(type="gaussian", mean=1.0, std=2.0), (200, 100))
    assert abs(g.mean().item() - 1.0) < 0.05 and abs(g.std().item() - 2.0) < 0.05
    m = fill(filler(type="msra"), (100, 50, 2, 2))
    assert abs(m.std().item() - math.sqrt(2 / 200)) < 0.005


def test_xavier_bounds_with_variance_norm():
    x = fill(filler(type="xavier", variance_norm=caffe_pb2.FillerParameter.AVERAGE), (20, 30))
    bound = math.sqrt(3 / 25)
    assert x.abs().max() <= bound and x.abs().max() > 0.9 * bound


def test_positive_unitball_rows_sum_to_one():
    u = fill(filler(type="positive_unitball"), (4, 3, 2))
    torch.testing.assert_close(u.sum(dim=(1, 2)), torch.ones(4))
    assert (u >= 0).all()


def test_bilinear_kernel():
    k = fill(filler(type="bilinear"), (2, 1, 4, 4))
    line = torch.tensor([0.25, 0.75, 0.75, 0.25])
    torch.testing.assert_close(k[1, 0], line[:, None] * line[None, :])


def test_unknown_filler():
    with pytest.raises(BuildError, match="unknown filler"):
        build(
            'name: "d" type: "DummyData" top: "a" dummy_data_param { shape { dim: 1 } '
            'data_filler { type: "zeros" } }'
        )
