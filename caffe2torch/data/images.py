"""Image decoding as Caffe's io.cpp does it, with OpenCV.

ReadImageToCVMat: ``cv::imread`` with IMREAD_COLOR (grey files give 3 equal channels,
alpha is dropped, BGR order) or IMREAD_GRAYSCALE, then ``cv::resize`` (INTER_LINEAR) to
new_height x new_width when both are set. Encoded Datums: ``cv::imdecode`` with flag -1
(IMREAD_UNCHANGED: the file's own channels) unless force_color / force_gray ask for 3 / 1.
"""

from __future__ import annotations

import os

import cv2
import numpy as np


def _resized(img: np.ndarray, new_height: int, new_width: int) -> np.ndarray:
    if new_height > 0 and new_width > 0:
        return cv2.resize(img, (new_width, new_height), interpolation=cv2.INTER_LINEAR)
    return img


def read_image(path: str, new_height: int = 0, new_width: int = 0, is_color: bool = True
               ) -> np.ndarray | None:
    """HxWxC (colour) or HxW (grey) uint8, or None when OpenCV cannot read the file."""
    flag = cv2.IMREAD_COLOR if is_color else cv2.IMREAD_GRAYSCALE
    img = cv2.imread(path, flag) if os.path.isfile(path) else None  # (imread would warn)
    if img is None:
        return None
    return _resized(img, new_height, new_width)


def decode_image(data: bytes, force_color: bool = False, force_gray: bool = False
                 ) -> np.ndarray | None:
    """Decode an encoded Datum's bytes (DecodeDatumToCVMat[Native])."""
    if force_color:
        flag = cv2.IMREAD_COLOR
    elif force_gray:
        flag = cv2.IMREAD_GRAYSCALE
    else:
        flag = cv2.IMREAD_UNCHANGED
    img = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), flag)
    return img


def to_chw(img: np.ndarray) -> np.ndarray:
    """An OpenCV HxW[xC] image as CxHxW (same dtype): a strided view, not a copy (the
    Transformer makes the one float32 copy)."""
    if img.ndim == 2:
        return img[None]
    return img.transpose(2, 0, 1)


__all__ = ["decode_image", "read_image", "to_chw"]
