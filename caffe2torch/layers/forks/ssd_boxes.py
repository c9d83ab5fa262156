"""The box arithmetic of SSD's augmentation (weiliu89/caffe, src/caffe/util/bbox_util.cpp
and sampler.cpp), in float32 as the fork computes it.

Boxes are label rows ``[item, group label, instance id, xmin, ymin, xmax, ymax, difficult]``
(a (K, 8) float32 array, in the record's group and annotation order); a window (a sampled
crop, the expansion canvas) is a tuple ``(xmin, ymin, xmax, ymax)`` of float32.

Random choices come from a :class:`~caffe2torch.data.transform.Draws`: :func:`uniform` is
the fork's ``caffe_rng_uniform`` (a float in [a, b)) drawn from it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from caffe2torch.data.transform import Draws
from caffe2torch.errors import DataError
from caffe2torch.numerics import f32
from caffe2torch.proto import caffe_pb2

Window = tuple[np.float32, np.float32, np.float32, np.float32]
UNIT: Window = (f32(0), f32(0), f32(1), f32(1))
_BITS = 24  # a float32 mantissa's worth of random bits per uniform draw


def uniform(rng: Draws, low: float, high: float) -> np.float32:
    """caffe_rng_uniform: ``low + (high - low) * u`` with u uniform in [0, 1), in float32."""
    u = f32(int(rng.integers(1 << _BITS)) / (1 << _BITS))
    return f32(f32(high) - f32(low)) * u + f32(low)


def _size(x0: Any, y0: Any, x1: Any, y1: Any) -> Any:
    """BBoxSize (normalized): 0 for an inverted box, else width x height."""
    return np.where((x1 < x0) | (y1 < y0), f32(0), (x1 - x0) * (y1 - y0))


def _intersect(a: Window, b: Any) -> tuple[Any, Any, Any, Any]:
    """IntersectBBox of window ``a`` with box(es) ``b`` (x0, y0, x1, y1 arrays): all zero
    where they do not meet (an edge shared counts as meeting, with zero size)."""
    bx0, by0, bx1, by1 = b
    apart = (bx0 > a[2]) | (bx1 < a[0]) | (by0 > a[3]) | (by1 < a[1])
    zero = f32(0)
    return (np.where(apart, zero, np.maximum(a[0], bx0)),
            np.where(apart, zero, np.maximum(a[1], by0)),
            np.where(apart, zero, np.minimum(a[2], bx1)),
            np.where(apart, zero, np.minimum(a[3], by1)))


def _coords(boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    return boxes[:, 3], boxes[:, 4], boxes[:, 5], boxes[:, 6]


def jaccard(window: Window, boxes: np.ndarray) -> np.ndarray:
    """JaccardOverlap of ``window`` with every box."""
    ix0, iy0, ix1, iy1 = _intersect(window, _coords(boxes))
    iw, ih = ix1 - ix0, iy1 - iy0
    inter = iw * ih
    union = _size(*window) + _size(*_coords(boxes)) - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where((iw > 0) & (ih > 0), inter / union, f32(0)).astype(np.float32)


def coverage_of_window(window: Window, boxes: np.ndarray) -> np.ndarray:
    """BBoxCoverage(window, box): the share of the window each box covers."""
    inter = _size(*_intersect(window, _coords(boxes)))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(inter > 0, inter / _size(*window), f32(0)).astype(np.float32)


def coverage_of_boxes(window: Window, boxes: np.ndarray) -> np.ndarray:
    """BBoxCoverage(box, window): the share of each box inside the window."""
    inter = _size(*_intersect(window, _coords(boxes)))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(inter > 0, inter / _size(*_coords(boxes)), f32(0)).astype(np.float32)


def clip_window(w: Window) -> Window:
    """ClipBBox of a window to [0, 1]."""
    c = np.clip(np.asarray(w, dtype=np.float32), f32(0), f32(1))
    return (c[0], c[1], c[2], c[3])


def transform_annotation(boxes: np.ndarray, window: Window, emit: Any | None = None,
                         mirror: bool = False) -> np.ndarray:
    """TransformAnnotation (WARP resize): the boxes that pass ``emit`` (an EmitConstraint,
    tested against the window before projecting) and meet ``window``, projected into it
    (ProjectBBox: coordinates relative to the window, clipped to [0, 1], dropped when
    nothing is left), then flipped left-right when ``mirror``."""
    if boxes.size == 0:
        return boxes.reshape(0, 8)
    x0, y0, x1, y1 = _coords(boxes)
    keep = np.ones(len(boxes), dtype=bool)
    if emit is not None:
        if emit.emit_type == caffe_pb2.EmitConstraint.CENTER:
            xc, yc = (x0 + x1) / f32(2), (y0 + y1) / f32(2)
            keep &= (xc >= window[0]) & (xc <= window[2]) & (yc >= window[1]) & (
                yc <= window[3])
        else:  # MIN_OVERLAP: strictly more of the box than emit_overlap inside the window
            keep &= coverage_of_boxes(window, boxes) > f32(emit.emit_overlap)
    keep &= ~((x0 >= window[2]) | (x1 <= window[0]) | (y0 >= window[3]) | (y1 <= window[1]))
    out = boxes[keep].copy()
    ww, wh = f32(window[2] - window[0]), f32(window[3] - window[1])
    out[:, 3] = (out[:, 3] - window[0]) / ww
    out[:, 4] = (out[:, 4] - window[1]) / wh
    out[:, 5] = (out[:, 5] - window[0]) / ww
    out[:, 6] = (out[:, 6] - window[1]) / wh
    out[:, 3:7] = np.clip(out[:, 3:7], f32(0), f32(1))
    out = out[_size(*_coords(out)) > 0]
    if mirror:
        x0m = f32(1) - out[:, 5]
        out[:, 5] = f32(1) - out[:, 3]
        out[:, 3] = x0m
    return out


def check_samplers(samplers: Any, where: str) -> None:
    """The fork's CHECKs on each sampler's ranges, as a DataError."""
    for k, bs in enumerate(samplers):
        s = bs.sampler
        name = f"{where}: batch_sampler {k + 1}"
        if not (0 < s.min_scale <= s.max_scale <= 1):
            raise DataError(f"{name}: the scale range [{s.min_scale}, {s.max_scale}] must "
                            "satisfy 0 < min_scale <= max_scale <= 1")
        if not (0 < s.min_aspect_ratio <= s.max_aspect_ratio < np.finfo(np.float32).max):
            raise DataError(f"{name}: the aspect ratio range [{s.min_aspect_ratio}, "
                            f"{s.max_aspect_ratio}] must satisfy 0 < min <= max")


def sample_window(sampler: Any, rng: Draws) -> Window:
    """SampleBBox: a random scale and aspect ratio (the ratio kept within [scale^2,
    1 / scale^2] so the window fits), then a random top-left corner."""
    scale = uniform(rng, sampler.min_scale, sampler.max_scale)
    ratio = uniform(rng, sampler.min_aspect_ratio, sampler.max_aspect_ratio)
    square = float(scale) ** 2
    ratio = f32(min(max(ratio, f32(square)), f32(1 / square)))
    width = scale * np.sqrt(ratio)
    height = scale / np.sqrt(ratio)
    x0 = uniform(rng, 0, f32(1) - width)
    y0 = uniform(rng, 0, f32(1) - height)
    return (x0, y0, f32(x0 + width), f32(y0 + height))


def satisfies(window: Window, boxes: np.ndarray, c: Any) -> bool:
    """SatisfySampleConstraint: no constraint accepts every window; otherwise some box
    must pass the jaccard test, or one of the coverage tests. The fork's loop returns as
    soon as a box passes every test it has, and at the end returns whether any box passed
    one of them (a box that passes the jaccard test but fails a coverage test still
    counts)."""
    jac = c.HasField("min_jaccard_overlap") or c.HasField("max_jaccard_overlap")
    sam = c.HasField("min_sample_coverage") or c.HasField("max_sample_coverage")
    obj = c.HasField("min_object_coverage") or c.HasField("max_object_coverage")
    if not (jac or sam or obj):
        return True
    tests = []
    if jac:
        tests.append((jaccard(window, boxes), "min_jaccard_overlap", "max_jaccard_overlap"))
    if sam:
        tests.append((coverage_of_window(window, boxes), "min_sample_coverage",
                      "max_sample_coverage"))
    if obj:
        tests.append((coverage_of_boxes(window, boxes), "min_object_coverage",
                      "max_object_coverage"))
    found = False
    for i in range(len(boxes)):
        for values, low, high in tests:
            v = values[i]
            if (c.HasField(low) and v < f32(getattr(c, low))) or (
                    c.HasField(high) and v > f32(getattr(c, high))):
                break
            found = True
        else:
            if found:
                return True
    return found


def generate_samples(boxes: np.ndarray, samplers: Any, rng: Draws) -> list[Window]:
    """GenerateBatchSamples: for each batch_sampler with use_original_image, up to
    max_trials windows, kept when they satisfy its sample_constraint, at most max_sample
    of them (when set)."""
    found_all: list[Window] = []
    for bs in samplers:
        if not bs.use_original_image:
            continue
        found = 0
        for _ in range(bs.max_trials):
            if bs.HasField("max_sample") and found >= bs.max_sample:
                break
            window = sample_window(bs.sampler, rng)  # LocateBBox in the unit box: itself
            if satisfies(window, boxes, bs.sample_constraint):
                found += 1
                found_all.append(window)
    return found_all


__all__ = ["UNIT", "Window", "check_samplers", "clip_window", "coverage_of_boxes",
           "coverage_of_window", "generate_samples", "jaccard", "sample_window",
           "satisfies", "transform_annotation", "uniform"]
