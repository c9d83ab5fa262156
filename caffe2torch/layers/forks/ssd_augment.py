"""The image side of SSD's augmenting data path (weiliu89/caffe: AnnotatedDataLayer::
load_batch, DataTransformer's DistortImage / ExpandImage / CropImage / Transform, and
im_transforms.cpp's ApplyDistort / ApplyResize), on OpenCV H x W x C uint8 images with
their label rows (see :mod:`caffe2torch.layers.forks.ssd_boxes`).

:class:`Augmenter` runs the fork's order on one record: distort (photometric), expand
(zoom out onto a mean-filled canvas), pick one of the batch samplers' windows and crop to
it, then resize (WARP, one of the ``interp_mode`` list at random) and draw the mirror
coin. An encoded record is re-encoded as JPEG after every stage that changed it, as the
fork stores each stage in a Datum (EncodeCVMatToDatum, OpenCV's default quality).
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from caffe2torch.data.images import decode_image
from caffe2torch.data.transform import Draws
from caffe2torch.errors import DataError
from caffe2torch.layers.forks.ssd_boxes import (
    UNIT,
    Window,
    check_samplers,
    clip_window,
    generate_samples,
    transform_annotation,
    uniform,
)
from caffe2torch.layers.forks.ssd_distort import distort
from caffe2torch.numerics import f32
from caffe2torch.proto import caffe_pb2

INTERP = {
    caffe_pb2.ResizeParameter.LINEAR: cv2.INTER_LINEAR,
    caffe_pb2.ResizeParameter.AREA: cv2.INTER_AREA,
    caffe_pb2.ResizeParameter.NEAREST: cv2.INTER_NEAREST,
    caffe_pb2.ResizeParameter.CUBIC: cv2.INTER_CUBIC,
    caffe_pb2.ResizeParameter.LANCZOS4: cv2.INTER_LANCZOS4,
}


def crop_pixels(img: np.ndarray, window: Window) -> np.ndarray:
    """CropImage: the window clipped to [0, 1], scaled to pixels in float32, offsets and
    sizes truncated to int."""
    h, w = img.shape[:2]
    x0, y0, x1, y1 = clip_window(window)
    sx0, sy0, sx1, sy1 = x0 * f32(w), y0 * f32(h), x1 * f32(w), y1 * f32(h)
    left, top = int(sx0), int(sy0)
    width, height = int(f32(sx1 - sx0)), int(f32(sy1 - sy0))
    return np.ascontiguousarray(img[top:top + height, left:left + width])


def resize(img: np.ndarray, param: Any, rng: Draws) -> np.ndarray:
    """ApplyResize (WARP): to height x width with an interp_mode drawn uniformly from the
    list (LINEAR when the list is empty)."""
    modes = list(param.interp_mode)
    interp = INTERP[modes[int(rng.integers(len(modes)))]] if modes else cv2.INTER_LINEAR
    out = cv2.resize(img, (int(param.width), int(param.height)), interpolation=interp)
    return out.reshape(*out.shape[:2], *img.shape[2:])


def expand_canvas(img: np.ndarray, ratio: np.float32, fill: np.ndarray | None,
                  rng: Draws) -> tuple[np.ndarray, Window]:
    """ExpandImage: a canvas ``ratio`` times the image's size (truncated), filled with
    ``fill`` per channel (zeros when None), the image pasted at a random whole-pixel
    offset; and the canvas as a window in the image's normalized coordinates."""
    h, w = img.shape[:2]
    height, width = int(f32(h) * ratio), int(f32(w) * ratio)
    top = int(np.floor(uniform(rng, 0, height - h)))
    left = int(np.floor(uniform(rng, 0, width - w)))
    canvas = np.zeros((height, width, *img.shape[2:]), np.uint8)
    if fill is not None:
        canvas[...] = fill if img.ndim == 3 else fill[0]
    canvas[top:top + h, left:left + w] = img
    window = (f32(-left) / f32(w), f32(-top) / f32(h), f32(width - left) / f32(w),
              f32(height - top) / f32(h))
    return canvas, window


def _mean_fill(mean_values: list[float]) -> np.ndarray | None:
    """The mean values as uint8 pixels (saturate_cast: rounded half to even, clipped)."""
    if not mean_values:
        return None
    return np.clip(np.rint(np.asarray(mean_values, np.float64)), 0, 255).astype(np.uint8)


class Augmenter:
    """The augmenting settings of one AnnotatedData layer."""

    def __init__(self, layer: Any, where: str) -> None:
        t = layer.transform_param
        self.where = where
        self.samplers = list(layer.annotated_data_param.batch_sampler)
        check_samplers(self.samplers, where)
        self.emit = t.emit_constraint if t.HasField("emit_constraint") else None
        self.mirror = bool(t.mirror)
        self.resize = t.resize_param if t.HasField("resize_param") else None
        self.force_color, self.force_gray = bool(t.force_color), bool(t.force_gray)
        self.expand = t.expand_param if t.HasField("expand_param") else None
        if self.expand is not None and t.HasField("mean_file"):
            raise DataError(f"{where}: expand_param with a mean_file is not reproduced (the "
                            "fork requires the mean to be the size of each random canvas)",
                            hint="use mean_value")
        self.fill = _mean_fill(list(t.mean_value))
        self.distort = t.distort_param if t.HasField("distort_param") else None

    def reencode(self, img: np.ndarray) -> np.ndarray:
        """A stage's image stored as the fork stores it: JPEG, decoded again."""
        ok, buf = cv2.imencode(".jpg", img)
        if not ok:
            raise DataError(f"{self.where}: OpenCV could not encode an augmented image")
        out = decode_image(buf.tobytes(), self.force_color, self.force_gray)
        assert out is not None
        return out

    def distort_stage(self, img: np.ndarray, rng: Draws, encoded: bool) -> np.ndarray:
        """distort_param (DistortImage): on encoded records only, stored as JPEG even
        when no step fired; the fork leaves raw records as they are."""
        if self.distort is None or not encoded:
            return img
        return self.reencode(distort(img, self.distort, rng, self.where))

    def expand_stage(self, img: np.ndarray, boxes: np.ndarray, rng: Draws,
                     encoded: bool) -> tuple[np.ndarray, np.ndarray]:
        """expand_param: with probability ``prob`` (and max_expand_ratio not within 0.01
        of 1), zoom out by a ratio drawn in [1, max_expand_ratio) onto a mean-filled
        canvas; the boxes move into the canvas's coordinates."""
        p = self.expand
        if p is None or uniform(rng, 0, 1) > f32(p.prob) or abs(
                float(f32(p.max_expand_ratio)) - 1) < 1e-2:
            return img, boxes
        ratio = uniform(rng, 1, p.max_expand_ratio)
        if img.ndim == 3 and self.fill is not None and len(self.fill) not in (
                1, img.shape[2]):
            raise DataError(f"{self.where}: {len(self.fill)} mean_value entries for "
                            f"{img.shape[2]} channels")
        canvas, window = expand_canvas(img, ratio, self.fill, rng)
        boxes = transform_annotation(boxes, window, self.emit)
        return (self.reencode(canvas) if encoded else canvas), boxes

    def crop_stage(self, img: np.ndarray, boxes: np.ndarray, rng: Draws,
                   encoded: bool) -> tuple[np.ndarray, np.ndarray]:
        """The batch samplers: one of the windows found, drawn uniformly, is cropped to
        and the boxes projected into it (no window found: the image as it is)."""
        windows = generate_samples(boxes, self.samplers, rng)
        if not windows:
            return img, boxes
        window = windows[int(rng.integers(len(windows)))]
        img = crop_pixels(img, window)
        boxes = transform_annotation(boxes, clip_window(window), self.emit)
        return (self.reencode(img) if encoded else img), boxes

    def final_stage(self, img: np.ndarray, boxes: np.ndarray, rng: Draws
                    ) -> tuple[np.ndarray, np.ndarray, bool]:
        """DataTransformer::Transform's share: the mirror coin, the resize, the boxes'
        last projection (onto the whole image, under emit_constraint) and flip."""
        mirror = self.mirror and bool(rng.integers(2))
        if self.resize is not None:
            img = resize(img, self.resize, rng)
        return img, transform_annotation(boxes, UNIT, self.emit, mirror), mirror

    def __call__(self, img: np.ndarray, boxes: np.ndarray, rng: Draws, encoded: bool
                 ) -> tuple[np.ndarray, np.ndarray, bool]:
        """One record through the fork's order: the image (H x W[ x C] uint8, before
        mean and scale), its label rows, and whether it is to be mirrored."""
        img = self.distort_stage(img, rng, encoded)
        img, boxes = self.expand_stage(img, boxes, rng, encoded)
        img, boxes = self.crop_stage(img, boxes, rng, encoded)
        return self.final_stage(img, boxes, rng)


__all__ = ["INTERP", "Augmenter", "crop_pixels", "expand_canvas", "resize"]
