"""DeepLab-v2's and hszhao/PSPNet's DataTransformer::TransformImgAndSeg: one image and its
label map, transformed together (the two forks' code is the same).

In the fork's order, for one row:

1. mirror: a coin flip when ``mirror`` is set, in either phase;
2. ``scale_factors`` (transform_param, the forks' field 8): one factor drawn at random;
   unless it is 1 the image is resized to int(float(H) * factor) x int(float(W) * factor)
   with INTER_LINEAR and the label map with INTER_NEAREST;
3. an image smaller than the crop is padded at the bottom and right: the image with the
   mean values (``mean_value``; so the padding is 0 after the mean is subtracted), the
   label map with ``ignore_label`` (cv::Scalar on an 8-bit map: saturated to 0..255);
4. the crop: a random offset in TRAIN (height drawn, then width), the centre
   ((H - h) / 2, (W - w) / 2) in TEST;
5. data = (float(pixel) - mean_value[c]) * scale in float32 (pixel * scale without a
   mean), label = the map's value; both mirrored along the width when the coin said so.

Without a crop the fork writes the top's height x width (the first image's size, or
new_height x new_width) from each image's top-left corner: a bigger image is cut so, a
smaller one is refused here (the fork reads past its rows). Padding without mean_value is
refused too: the fork reads mean_values_[0..2] of an empty list there. Random draws are
caffe2torch's own (the feeder's per-row draws), not Caffe's generator. ``mean_file`` is
refused, as by the fork's layer ("ImageSegDataLayer does not support mean file").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import cv2
import numpy as np

from caffe2torch.data.crop import seg_crop_hw
from caffe2torch.data.transform import Draws, _rng
from caffe2torch.errors import DataError

SCALE_FACTORS = "transform_param.scale_factors"


def saturate_u8(value: int) -> int:
    """cv::Scalar(value) written into an 8-bit map: clipped to 0..255."""
    return min(max(int(value), 0), 255)


def read_scale_factors(value: Any, where: str) -> list[np.float32]:
    """``transform_param.scale_factors`` as kept (one number or a list) -> float32s."""
    values = value if isinstance(value, (list, tuple)) else [value]
    out = []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0:
            raise DataError(f"{where}: transform_param.scale_factors must be positive "
                            f"numbers, got {v!r}")
        out.append(np.float32(v))
    return out


class SegTransform:
    """The transform_param of one ImageSegData layer, for one phase."""

    def __init__(self, param: Any, phase: str, where: str = "",
                 extras: Mapping[str, Any] | None = None) -> None:
        self.where = where
        self.phase = phase
        if param.HasField("mean_file"):
            raise DataError(f"{where}: ImageSegData does not support mean_file",
                            hint="give the mean as mean_value (one per channel)")
        self._has_size = param.HasField("crop_size")
        self._size = int(param.crop_size)
        self.mirror = bool(param.mirror)
        self.scale = np.float32(param.scale)
        self.mean_values = np.asarray(list(param.mean_value), dtype=np.float32)
        self.crop_h, self.crop_w = 0, 0
        self.scale_factors: list[np.float32] = []
        self.take_extras(extras or {})

    def take_extras(self, extras: Mapping[str, Any]) -> None:
        """The forks' fields kept for the layer: crop_height / crop_width, scale_factors."""
        self.crop_h, self.crop_w = seg_crop_hw(self._has_size, self._size, extras, self.where)
        raw = extras.get(SCALE_FACTORS)
        self.scale_factors = read_scale_factors(raw, self.where) if raw is not None else []

    @property
    def cropped(self) -> bool:
        return self.crop_h > 0 and self.crop_w > 0  # the fork crops only with both

    @property
    def random(self) -> bool:
        """Whether the result depends on the random generator."""
        return self.mirror or bool(self.scale_factors) or (
            self.cropped and self.phase == "TRAIN")

    def _means(self, c: int, label: str) -> np.ndarray | None:
        n = len(self.mean_values)
        if n == 0:
            return None
        if n not in (1, c):
            raise DataError(f"{label}: {n} mean_value entries for {c} channels",
                            hint="specify either 1 mean_value or as many as channels")
        return self.mean_values if n == c else np.repeat(self.mean_values, c)

    def __call__(self, img: np.ndarray, seg: np.ndarray, top_hw: tuple[int, int],
                 ignore_label: int, rng: Draws | None = None, item: str = "",
                 out: Sequence[np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``img`` (H x W x C uint8) and ``seg`` (H x W uint8) -> (C x h x w, 1 x h x w)
        float32 with (h, w) = ``top_hw``; written into ``out`` (data, label) when they
        are float32 arrays of those shapes."""
        label = f"{self.where}: {item}" if item else self.where
        g = _rng(rng)
        mirror = self.mirror and bool(g.integers(2))
        if self.scale_factors:
            factor = self.scale_factors[int(g.integers(len(self.scale_factors)))]
            if factor != 1:
                img, seg = _rescale(img, seg, factor, label)
        h, w, c = img.shape
        means = self._means(c, label)
        oh, ow = top_hw
        top = left = 0
        if self.cropped:
            ph, pw = max(self.crop_h - h, 0), max(self.crop_w - w, 0)
            if ph or pw:
                if means is None:
                    raise DataError(f"{label}: the image ({h}x{w}) is smaller than the crop "
                                    f"{self.crop_h}x{self.crop_w} and the fork pads it with "
                                    "transform_param.mean_value, which this layer does not "
                                    "set", hint="set mean_value (one per channel), or "
                                    "resize (new_height / new_width) or lower the crop")
                img, seg = _pad(img, seg, ph, pw, means, ignore_label)
                h, w = h + ph, w + pw
            if self.phase == "TRAIN":
                top = int(g.integers(h - self.crop_h + 1))
                left = int(g.integers(w - self.crop_w + 1))
            else:
                top, left = (h - self.crop_h) // 2, (w - self.crop_w) // 2
        elif h < oh or w < ow:
            raise DataError(f"{label}: the image is {h}x{w}, smaller than the top's {oh}x{ow} "
                            "(the first image's size, or new_height x new_width)",
                            hint="set new_height / new_width or a crop (crop_size) so that "
                                 "every image gives the same size")
        region = img[top:top + oh, left:left + ow]
        seg_region = seg[top:top + oh, left:left + ow]
        if mirror:
            region, seg_region = region[:, ::-1], seg_region[:, ::-1]
        data = _target(out, 0, (c, oh, ow))
        np.copyto(data, region.transpose(2, 0, 1), casting="unsafe")
        if means is not None:
            data -= means[:, None, None]
        if means is not None or self.scale != 1:
            data *= self.scale
        target = _target(out, 1, (1, oh, ow))
        np.copyto(target[0], seg_region, casting="unsafe")
        return data, target


def _target(out: Sequence[np.ndarray] | None, k: int, shape: tuple[int, ...]) -> np.ndarray:
    if out is not None and len(out) > k:
        a = out[k]
        if isinstance(a, np.ndarray) and a.shape == shape and a.dtype == np.float32:
            return a
    return np.empty(shape, dtype=np.float32)


def _rescale(img: np.ndarray, seg: np.ndarray, factor: np.float32, label: str
             ) -> tuple[np.ndarray, np.ndarray]:
    # `img_height *= scale`: int times float, in float, truncated back to int
    h = int(np.float32(img.shape[0]) * factor)
    w = int(np.float32(img.shape[1]) * factor)
    if h <= 0 or w <= 0:
        raise DataError(f"{label}: scale factor {float(factor)} leaves no image "
                        f"({h}x{w})", hint="use larger transform_param.scale_factors")
    big = cv2.resize(img, (w, h), interpolation=cv2.INTER_LINEAR)
    return big.reshape(h, w, img.shape[2]), cv2.resize(seg, (w, h),
                                                       interpolation=cv2.INTER_NEAREST)


def _pad(img: np.ndarray, seg: np.ndarray, ph: int, pw: int, means: np.ndarray,
         ignore_label: int) -> tuple[np.ndarray, np.ndarray]:
    """cv::copyMakeBorder at the bottom and right: the image (as doubles, then float) with
    the mean values, the label map with the saturated ignore_label."""
    h, w, c = img.shape
    canvas = np.empty((h + ph, w + pw, c), dtype=np.float32)
    canvas[...] = means[:c]
    canvas[:h, :w] = img
    labels = np.full((h + ph, w + pw), saturate_u8(ignore_label), dtype=np.uint8)
    labels[:h, :w] = seg
    return canvas, labels


__all__ = ["SCALE_FACTORS", "SegTransform", "read_scale_factors", "saturate_u8"]
