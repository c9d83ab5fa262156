"""Caffe's DataTransformer (src/caffe/data_transformer.cpp) on one CxHxW image.

* crop_size, or a fork's rectangular crop (data.crop: Cysu/caffe's crop_height /
  crop_width, SSD's crop_h / crop_w): a random offset in TRAIN (height drawn, then width),
  the centre ((H - crop_h) / 2, (W - crop_w) / 2) in TEST;
* mirror: a coin flip in either phase (Caffe flips in TEST too when mirror is set);
* mean_file (a BlobProto of the uncropped C x H x W, cropped at the same offset) or
  mean_value (one per channel, or one for all), subtracted before ``scale``:
  ``out = (pixel - mean) * scale`` in float32.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from types import SimpleNamespace
from typing import Any, Protocol

import cv2
import numpy as np

from caffe2torch.data.crop import crop_hw
from caffe2torch.errors import DataError, ParseError


class Draws(Protocol):
    """What a transform draws its random choices from (a numpy Generator, or the
    feeder's per-row RowDraws)."""

    def integers(self, high: int, /) -> Any: ...


class Transformer:
    """The transform_param of one data layer, for one phase."""

    def __init__(self, param: Any, phase: str, cwd: str = ".", where: str = "",
                 extras: Mapping[str, Any] | None = None) -> None:
        self.where = where
        self.phase = phase
        # the crop settings alone (a protobuf message of a fork's schema does not pickle)
        self._crop_param = SimpleNamespace(crop_size=int(param.crop_size),
                                           crop_h=int(getattr(param, "crop_h", 0)),
                                           crop_w=int(getattr(param, "crop_w", 0)))
        self.crop = int(param.crop_size)
        self.crop_h, self.crop_w = crop_hw(param, extras, where)
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
        self.mean_file = str(param.mean_file)

    def take_extras(self, extras: Mapping[str, Any]) -> None:
        """Read the fork fields kept for the layer (a rectangular crop, data.crop)."""
        self.crop_h, self.crop_w = crop_hw(self._crop_param, extras, self.where)

    @property
    def random(self) -> bool:
        """Whether the result depends on the random generator."""
        return self.mirror or ((self.crop_h > 0 or self.crop_w > 0) and self.phase == "TRAIN")

    def __call__(self, chw: np.ndarray, rng: Draws | None = None,
                 item: str = "", out: np.ndarray | None = None) -> np.ndarray:
        """Transform ``chw`` (uint8 or float pixels) into float32 C x h x w: into ``out``
        when it is a float32 array of exactly that shape (a row of a batch buffer), else
        into a new array."""
        c, h, w = chw.shape
        label = f"{self.where}: {item}" if item else self.where
        mirror = self.mirror and bool(_rng(rng).integers(2))
        top, left, oh, ow = 0, 0, h, w
        ch, cw = self.crop_h, self.crop_w
        if h < ch or w < cw:
            what = self._crop_text()
            raise DataError(f"{label}: image {h}x{w} is smaller than {what}",
                            hint="resize it (new_height/new_width) or lower "
                            + ("crop_size" if what.startswith("crop_size") else "the crop"))
        g = _rng(rng) if self.phase == "TRAIN" else None
        # Caffe draws the height offset, then the width offset (data_transformer.cpp)
        if ch:
            oh = ch
            top = int(g.integers(h - ch + 1)) if g is not None else (h - ch) // 2
        if cw:
            ow = cw
            left = int(g.integers(w - cw + 1)) if g is not None else (w - cw) // 2
        if out is None or out.shape != (c, oh, ow) or out.dtype != np.float32:
            out = np.empty((c, oh, ow), dtype=np.float32)
        # Caffe's mirror writes (pixel - mean) * scale at w' = W - 1 - w: flip the pixels
        # and the mean alike.
        flip = slice(None, None, -1) if mirror else slice(None)
        _copy_pixels(out, chw, top, left, mirror)
        if self.mean is not None:
            if self.mean.shape != (c, h, w):
                raise self._mean_mismatch(label, (c, h, w))
            out -= self.mean[:, top:top + oh, left:left + ow][:, :, flip]
        elif len(self.mean_values):
            if len(self.mean_values) not in (1, c):
                raise DataError(f"{label}: {len(self.mean_values)} mean_value entries for "
                                f"{c} channels", hint="specify either 1 mean_value or as "
                                "many as channels")
            mv = self.mean_values if len(self.mean_values) == c else np.repeat(
                self.mean_values, c)
            out -= mv[:, None, None]
        if self.scale != 1:
            out *= self.scale
        return out

    def _crop_text(self) -> str:
        if self.crop_h == self.crop_w == self.crop:
            return f"crop_size {self.crop}"
        return f"the crop {self.crop_h or 'all'} x {self.crop_w or 'all'} (height x width)"

    def _mean_mismatch(self, label: str, shape: tuple[int, int, int]) -> DataError:
        """Caffe checks the mean's channels, height and width against the datum's
        (data_transformer.cpp: "Number of channels / Height / Width of data and mean")."""
        assert self.mean is not None
        mc, mh, mw = self.mean.shape
        c, h, w = shape
        if mc != c:
            hint = (f"the images are read with {c} channel(s) and the mean has {mc}: set "
                    "is_color (ImageData) or force_color / force_gray to match the images the "
                    "mean was computed over, or compute the mean over these images")
        else:
            hint = (f"compute the mean over images of {h}x{w} (Caffe's compute_image_mean), "
                    f"resize the images to {mh}x{mw} (new_height / new_width), or use "
                    "mean_value (one per channel) instead")
        return DataError(f"the mean is {mc}x{mh}x{mw} but the image is {c}x{h}x{w} (before "
                         f"cropping; {label})", path=self.mean_file, hint=hint)


def _copy_pixels(out: np.ndarray, chw: np.ndarray, top: int, left: int, mirror: bool) -> None:
    """``out`` (float32 C x h x w) = the crop of ``chw`` at (top, left), mirrored along the
    width when asked. The pixel values are copied exactly (uint8 and float32 both convert
    to float32 without rounding)."""
    c, oh, ow = out.shape
    hwc = chw.transpose(1, 2, 0)
    if chw.dtype == np.uint8 and c <= 4 and hwc.strides[2] == 1 and hwc.strides[1] == c:
        # An OpenCV image seen as C x H x W: crop and flip it as H x W x C rows (one
        # contiguous copy), let OpenCV split the channels, then convert plane by plane.
        # About 3x faster than numpy's strided cast of the transposed view.
        roi = hwc[top:top + oh, left:left + ow]
        roi = cv2.flip(roi, 1) if mirror else np.ascontiguousarray(roi)
        if c > 1:
            planes, views = _planes(c, oh, ow)
            cv2.split(roi, views)
        else:
            planes = roi.reshape(1, oh, ow)
        np.copyto(out, planes, casting="unsafe")  # one contiguous uint8 -> float32 pass
        return
    view = chw[:, top:top + oh, left:left + ow]
    if mirror:
        view = view[:, :, ::-1]
    if chw.dtype == np.uint8:
        # gathered once in uint8 (4x less memory traffic than in float32), then converted
        view = np.ascontiguousarray(view)
    np.copyto(out, view, casting="unsafe")


_SCRATCH = threading.local()


def _planes(c: int, h: int, w: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """Scratch uint8 C x H x W planes for cv2.split (and a view of each plane), kept per
    thread and shape: allocating them per image costs as much as the split."""
    cache: dict[tuple[int, int, int], tuple[np.ndarray, list[np.ndarray]]] = (
        _SCRATCH.__dict__.setdefault("planes", {}))
    key = (c, h, w)
    found = cache.get(key)
    if found is None:
        if len(cache) > 16:
            cache.clear()
        planes = np.empty((c, h, w), np.uint8)
        found = cache[key] = (planes, list(planes))
    return found


_DEFAULT_RNG = np.random.default_rng()


def _rng(rng: Draws | None) -> Draws:
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
