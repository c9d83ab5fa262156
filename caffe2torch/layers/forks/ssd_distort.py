"""SSD's photometric distortion (weiliu89/caffe, src/caffe/util/im_transforms.cpp:
ApplyDistort) on an OpenCV B, G, R uint8 image.

A coin (uniform > 0.5) picks the order: brightness, contrast, saturation, hue, or
brightness, saturation, hue, contrast; then the channel reorder. Each step draws its own
probability test and amount:

* brightness: ``pixel + delta``, delta in [-brightness_delta, brightness_delta);
* contrast: ``pixel * delta``, delta in [contrast_lower, contrast_upper) (skipped when
  within 1e-3 of 1);
* saturation: the S channel of OpenCV's 8-bit HSV times delta, back to BGR (the fork's
  test ``|delta - 1| != 1e-3`` always passes: the round trip happens even for 1);
* hue: the H channel (0..179) plus delta, saturated to 0..255 rather than wrapped, back
  to BGR;
* random_order: the channels shuffled (the fork uses std::random_shuffle; here a
  Fisher-Yates shuffle from the same draws).

Every step is Mat::convertTo on uint8: ``x * alpha + beta`` in float32, rounded to nearest
(ties to even) and saturated to 0..255.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from caffe2torch.data.transform import Draws
from caffe2torch.errors import DataError
from caffe2torch.layers.forks.ssd_boxes import uniform
from caffe2torch.numerics import f32


def convert(x: np.ndarray, alpha: float | np.floating[Any], beta: float | np.floating[Any]
            ) -> np.ndarray:
    """Mat::convertTo(uint8, alpha, beta)."""
    y = x.astype(np.float32) * f32(alpha) + f32(beta)
    return np.clip(np.rint(y), 0, 255).astype(np.uint8)


def _hsv_channel(img: np.ndarray, channel: int, alpha: float | np.floating[Any],
                 beta: float | np.floating[Any]) -> np.ndarray:
    hsv = cv2.cvtColor(img, cv2.COLOR_BGR2HSV)
    hsv[..., channel] = convert(hsv[..., channel], alpha, beta)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)


def brightness(img: np.ndarray, p: Any, rng: Draws) -> np.ndarray:
    if uniform(rng, 0, 1) < f32(p.brightness_prob):
        if p.brightness_delta < 0:
            raise DataError("distort_param.brightness_delta must be non-negative")
        delta = uniform(rng, -p.brightness_delta, p.brightness_delta)
        if abs(delta) > 0:
            return convert(img, 1, delta)
    return img


def contrast(img: np.ndarray, p: Any, rng: Draws) -> np.ndarray:
    if uniform(rng, 0, 1) < f32(p.contrast_prob):
        if not 0 <= p.contrast_lower <= p.contrast_upper:
            raise DataError("distort_param: need 0 <= contrast_lower <= contrast_upper")
        delta = uniform(rng, p.contrast_lower, p.contrast_upper)
        if abs(delta - f32(1)) > f32(1e-3):
            return convert(img, delta, 0)
    return img


def saturation(img: np.ndarray, p: Any, rng: Draws) -> np.ndarray:
    if uniform(rng, 0, 1) < f32(p.saturation_prob):
        if not 0 <= p.saturation_lower <= p.saturation_upper:
            raise DataError("distort_param: need 0 <= saturation_lower <= "
                            "saturation_upper")
        delta = uniform(rng, p.saturation_lower, p.saturation_upper)
        return _hsv_channel(img, 1, delta, 0)
    return img


def hue(img: np.ndarray, p: Any, rng: Draws) -> np.ndarray:
    if uniform(rng, 0, 1) < f32(p.hue_prob):
        if p.hue_delta < 0:
            raise DataError("distort_param.hue_delta must be non-negative")
        delta = uniform(rng, -p.hue_delta, p.hue_delta)
        if abs(delta) > 0:
            return _hsv_channel(img, 0, 1, delta)
    return img


def reorder(img: np.ndarray, p: Any, rng: Draws) -> np.ndarray:
    if uniform(rng, 0, 1) < f32(p.random_order_prob):
        order = [0, 1, 2]
        for i in range(2, 0, -1):
            j = int(rng.integers(i + 1))
            order[i], order[j] = order[j], order[i]
        return np.ascontiguousarray(img[..., order])
    return img


def distort(img: np.ndarray, p: Any, rng: Draws, where: str = "") -> np.ndarray:
    """ApplyDistort with the DistortionParameter ``p``."""
    if img.ndim != 3 or img.shape[2] != 3:
        raise DataError(f"{where}: distort_param needs 3-channel (BGR) images, got shape "
                        f"{img.shape}", hint="decode in colour (transform_param "
                        "force_color: true)")
    if uniform(rng, 0, 1) > f32(0.5):
        steps = (brightness, contrast, saturation, hue)
    else:
        steps = (brightness, saturation, hue, contrast)
    for step in steps:
        img = step(img, p, rng)
    return reorder(img, p, rng)


__all__ = ["brightness", "contrast", "convert", "distort", "hue", "reorder", "saturation"]
