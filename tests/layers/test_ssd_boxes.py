"""SSD's augmentation box arithmetic (caffe2torch.layers.forks.ssd_boxes) on hand-computed
cases, and the batch samplers' constraints over many draws."""

from __future__ import annotations

import numpy as np
import pytest
from google.protobuf import text_format

from caffe2torch.data.order import RowDraws
from caffe2torch.errors import DataError
from caffe2torch.layers.forks.ssd_boxes import (
    UNIT,
    check_samplers,
    coverage_of_boxes,
    coverage_of_window,
    generate_samples,
    jaccard,
    sample_window,
    satisfies,
    transform_annotation,
    uniform,
)
from caffe2torch.numerics import f32
from caffe2torch.proto import caffe_pb2


def rows(*boxes: tuple[float, float, float, float]) -> np.ndarray:
    return np.array([[0, k + 1, k, *b, k % 2] for k, b in enumerate(boxes)], dtype=np.float32)


def window(*w: float) -> tuple[np.float32, ...]:
    return tuple(f32(v) for v in w)


def emit(text: str) -> caffe_pb2.EmitConstraint:
    return text_format.Parse(text, caffe_pb2.EmitConstraint())


def batch_sampler(text: str) -> caffe_pb2.BatchSampler:
    return text_format.Parse(text, caffe_pb2.BatchSampler())


BOXES = rows((0.3, 0.3, 0.5, 0.5), (0.1, 0.6, 0.4, 0.9), (0.7, 0.1, 0.9, 0.3))
WIN = window(0.2, 0.2, 0.6, 0.7)


def test_projection_into_a_window() -> None:
    out = transform_annotation(BOXES, WIN)
    # the third box is outside the window: dropped; the second is clipped
    np.testing.assert_allclose(out[:, 3:7], [[0.25, 0.2, 0.75, 0.6], [0, 0.8, 0.5, 1]],
                               atol=1e-6)
    np.testing.assert_array_equal(out[:, [1, 2, 7]], [[1, 0, 0], [2, 1, 1]])  # kept along


def test_emit_constraints() -> None:
    # CENTER: the second box's centre (0.25, 0.75) is below the window
    out = transform_annotation(BOXES, WIN, emit("emit_type: CENTER"))
    np.testing.assert_array_equal(out[:, 1], [1])
    # MIN_OVERLAP: 0.02 / 0.09 of the second box is inside, not more than 0.2 ... 0.5
    assert len(transform_annotation(BOXES, WIN, emit("emit_type: MIN_OVERLAP "
                                                     "emit_overlap: 0.2"))) == 2
    assert len(transform_annotation(BOXES, WIN, emit("emit_type: MIN_OVERLAP "
                                                     "emit_overlap: 0.5"))) == 1


def test_mirror_flips_x() -> None:
    out = transform_annotation(rows((0.1, 0.2, 0.3, 0.4)), UNIT, mirror=True)
    np.testing.assert_allclose(out[0, 3:7], [0.7, 0.2, 0.9, 0.4], atol=1e-6)


def test_box_of_zero_size_after_clipping_is_dropped() -> None:
    # touches the window's edge only: ProjectBBox refuses it
    assert len(transform_annotation(rows((0.6, 0.3, 0.8, 0.5)), WIN)) == 0
    assert transform_annotation(np.zeros((0, 8), np.float32), WIN).shape == (0, 8)


def test_overlaps() -> None:
    w, b = window(0, 0, 0.5, 0.5), rows((0.25, 0.25, 0.75, 0.75))
    np.testing.assert_allclose(jaccard(w, b), [0.0625 / 0.4375], rtol=1e-6)
    np.testing.assert_allclose(coverage_of_window(w, b), [0.25], rtol=1e-6)
    np.testing.assert_allclose(coverage_of_boxes(window(0, 0, 1, 0.5), b), [0.5], rtol=1e-6)
    assert jaccard(w, rows((0.6, 0.6, 0.9, 0.9)))[0] == 0


def test_constraint_quirk_of_the_fork() -> None:
    """A box that passes the jaccard test but fails a coverage test still makes the
    window acceptable (SatisfySampleConstraint returns ``found``)."""
    c = text_format.Parse("min_jaccard_overlap: 0.1 min_sample_coverage: 0.9",
                          caffe_pb2.SampleConstraint())
    w, b = window(0, 0, 0.5, 0.5), rows((0.25, 0.25, 0.75, 0.75))
    assert satisfies(w, b, c)
    c2 = text_format.Parse("min_jaccard_overlap: 0.5", caffe_pb2.SampleConstraint())
    assert not satisfies(w, b, c2)
    assert satisfies(w, b, caffe_pb2.SampleConstraint())  # no constraint: any window
    assert not satisfies(w, b[:0], c2)  # a constraint and no box: none


def test_uniform_range() -> None:
    rng = RowDraws(7, 0)
    values = [uniform(rng, -2, 3) for _ in range(2000)]
    assert all(isinstance(v, np.float32) and -2 <= v < 3 for v in values)
    assert min(values) < -1.9 and max(values) > 2.9


def test_sampled_windows_respect_scale_and_aspect_ratio() -> None:
    s = batch_sampler("sampler { min_scale: 0.3 max_scale: 0.9 min_aspect_ratio: 0.5 "
                      "max_aspect_ratio: 2 }").sampler
    rng = np.random.default_rng(0)
    for _ in range(3000):
        x0, y0, x1, y1 = (float(v) for v in sample_window(s, rng))
        # float32: a window of width 1 can start a rounding step below 0
        assert -1e-6 <= x0 < x1 <= 1 + 1e-6 and -1e-6 <= y0 < y1 <= 1 + 1e-6
        scale = np.sqrt((x1 - x0) * (y1 - y0))
        ratio = (x1 - x0) / (y1 - y0)
        assert 0.3 - 1e-5 <= scale <= 0.9 + 1e-5
        assert max(0.5, scale ** 2) - 1e-4 <= ratio <= min(2, 1 / scale ** 2) + 1e-4


@pytest.mark.parametrize("constraint,test", [
    ("min_jaccard_overlap: 0.5", lambda j, sc, oc: (j >= 0.5).any()),
    ("max_jaccard_overlap: 0.2", lambda j, sc, oc: (j <= 0.2).any()),
    ("min_object_coverage: 0.9", lambda j, sc, oc: (oc >= 0.9).any()),
    ("min_sample_coverage: 0.3 max_sample_coverage: 0.6",
     lambda j, sc, oc: ((sc >= 0.3) & (sc <= 0.6)).any()),
])
def test_generated_windows_honour_their_constraint(constraint: str, test) -> None:
    boxes = rows((0.1, 0.1, 0.5, 0.6), (0.55, 0.3, 0.95, 0.9))
    bs = batch_sampler(f"sampler {{ min_scale: 0.3 max_aspect_ratio: 2 "
                       f"min_aspect_ratio: 0.5 }} sample_constraint {{ {constraint} }} "
                       "max_trials: 50")
    found = 0
    for seed in range(60):
        for w in generate_samples(boxes, [bs], RowDraws(seed, 0)):
            found += 1
            assert test(jaccard(w, boxes), coverage_of_window(w, boxes),
                        coverage_of_boxes(w, boxes))
    assert found > 20  # the constraint can be met: windows were found


def test_max_sample_and_original_image() -> None:
    boxes = rows((0.1, 0.1, 0.5, 0.6))
    one = batch_sampler("max_sample: 1 max_trials: 50 sampler { min_scale: 0.5 }")
    skipped = batch_sampler("use_original_image: false max_trials: 50")
    rng = RowDraws(3, 0)
    assert len(generate_samples(boxes, [one, one, skipped], rng)) == 2
    # the defaults: 100 trials of the whole image, no max_sample
    whole = generate_samples(boxes, [batch_sampler("")], rng)
    assert len(whole) == 100 and all(w == UNIT for w in whole)


def test_bad_sampler_ranges() -> None:
    with pytest.raises(DataError, match="batch_sampler 1: the scale range"):
        check_samplers([batch_sampler("sampler { min_scale: 0 }")], "layer 'data'")
    with pytest.raises(DataError, match="aspect ratio"):
        check_samplers([batch_sampler("sampler { min_aspect_ratio: 3 }")], "layer 'data'")
