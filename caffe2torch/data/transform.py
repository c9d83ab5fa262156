"""Caffe's DataTransformer (src/caffe/data_transformer.cpp) on one CxHxW image.

* crop_size: a random offset in TRAIN, the centre ((H - crop) / 2, (W - crop) / 2) in TEST;
* mirror: a coin flip in either phase (Caffe flips in TEST too when mirror is set);
* mean_file (a BlobProto of the uncropped C x H x W, cropped at the same offset) or
  mean_value (one per channel, or one for all), subtracted before ``scale``:
  ``out = (pixel - mean) * scale`` in float32.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from caffe2torch.errors import DataError, ParseError


class Transformer:
    """The transform_param of one data layer, for one phase."""

    def __init__(self, param: Any, phase: str, cwd: str = ".", where: str = "") -> None:
        self.where = where
        self.phase = phase
        self.crop = int(param.crop_size)
        self.mirror = bool(param.mirror)
        self.scale = np.float32(param.scale)
        self.force_color = bool(param.force_color)
        self.force_gray = bool(param.force_gray)
        if self.force_color and self.force_gray:
            raise DataError(f"{where}: cannot set both force_color and force_gray")
        self.mean_values = np.asarray(list(param.mean_value), dtype=np.float32)
        self.mean: np.ndarray | None = None
        if param.HasField("mean_file"):
            if len(self.mean_values):
                raise DataError(f"{where}: cannot specify mean_file and mean_value at the "
                                "same time", hint="keep one of them")
            self.mean = _read_mean(os.path.join(cwd, param.mean_file), param.mean_file)

    @property
    def random(self) -> bool:
        """Whether the result depends on the random generator."""
        return self.mirror or (self.crop > 0 and self.phase == "TRAIN")

    def __call__(self, chw: np.ndarray, rng: np.random.Generator | None = None,
                 item: str = "") -> np.ndarray:
        """Transform ``chw`` (uint8 or float pixels) into float32 C x h x w."""
        c, h, w = chw.shape
        label = f"{self.where}: {item}" if item else self.where
        mirror = self.mirror and bool(_rng(rng).integers(2))
        top, left, oh, ow = 0, 0, h, w
        if self.crop:
            if h < self.crop or w < self.crop:
                raise DataError(f"{label}: image {h}x{w} is smaller than crop_size "
                                f"{self.crop}", hint="resize it (new_height/new_width) or "
                                "lower crop_size")
            oh = ow = self.crop
            if self.phase == "TRAIN":
                g = _rng(rng)
                top = int(g.integers(h - self.crop + 1))
                left = int(g.integers(w - self.crop + 1))
            else:
                top, left = (h - self.crop) // 2, (w - self.crop) // 2
        # Crop and mirror are views, gathered once in the input dtype (uint8: 4x less memory
        # traffic than in float32) and then converted. Caffe's mirror writes
        # (pixel - mean) * scale at w' = W - 1 - w: flip the pixels and the mean alike.
        flip = slice(None, None, -1) if mirror else slice(None)
        x = np.ascontiguousarray(chw[:, top:top + oh, left:left + ow][:, :, flip]).astype(
            np.float32)
        if self.mean is not None:
            if self.mean.shape != (c, h, w):
                raise DataError(
                    f"{label}: the mean file is {'x'.join(map(str, self.mean.shape))} but the "
                    f"image is {c}x{h}x{w} (before cropping)",
                    hint="compute the mean over images of this size")
            x -= self.mean[:, top:top + oh, left:left + ow][:, :, flip]
        elif len(self.mean_values):
            if len(self.mean_values) not in (1, c):
                raise DataError(f"{label}: {len(self.mean_values)} mean_value entries for "
                                f"{c} channels", hint="specify either 1 mean_value or as "
                                "many as channels")
            mv = self.mean_values if len(self.mean_values) == c else np.repeat(
                self.mean_values, c)
            x -= mv[:, None, None]
        if self.scale != 1:
            x *= self.scale
        return x


_DEFAULT_RNG = np.random.default_rng()


def _rng(rng: np.random.Generator | None) -> np.random.Generator:
    return rng if rng is not None else _DEFAULT_RNG


def _read_mean(path: str, shown: str) -> np.ndarray:
    from caffe2torch.io import read_binaryproto

    if not os.path.exists(path):
        raise DataError("mean_file not found", path=shown,
                        hint="paths are relative to the working directory Caffe runs in")
    try:
        arr = np.asarray(read_binaryproto(path), dtype=np.float32)
    except ParseError as e:
        raise DataError(f"cannot read the mean file: {e.message}", path=shown,
                        hint=e.hint) from None
    if arr.ndim < 3 or int(np.prod(arr.shape[:-3])) != 1:
        raise DataError(f"the mean file holds a blob of shape {arr.shape}, not one "
                        "1 x C x H x W image", path=shown)
    return np.ascontiguousarray(arr.reshape(arr.shape[-3:]))


__all__ = ["Transformer"]
