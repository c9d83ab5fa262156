"""Image decoding as Caffe's io.cpp does it, with OpenCV.

ReadImageToCVMat: ``cv::imread`` with IMREAD_COLOR (grey files give 3 equal channels,
alpha is dropped, BGR order) or IMREAD_GRAYSCALE, then ``cv::resize`` (INTER_LINEAR) to
new_height x new_width when both are set. Encoded Datums: ``cv::imdecode`` with flag -1
(IMREAD_UNCHANGED: the file's own channels) unless force_color / force_gray ask for 3 / 1.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import cv2
import numpy as np

_quiet_lock = threading.Lock()
_quiet_depth = 0
_quiet_saved: int | None = None


@contextmanager
def opencv_quiet() -> Iterator[None]:
    """OpenCV's own log off while it decodes: a damaged PNG makes it print '[ WARN:0@...]
    global grfmt_png.cpp ...' lines to stderr before our message, which names the file and
    says what to do. The level is global to OpenCV: the first of overlapping callers (the
    reader threads) saves it, the last restores it. (libjpeg's own 'Premature end of JPEG
    file' is printed by the library itself, outside OpenCV's log.)"""
    global _quiet_depth, _quiet_saved
    with _quiet_lock:
        if _quiet_depth == 0:
            _quiet_saved = cv2.utils.logging.getLogLevel()
            cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
        _quiet_depth += 1
    try:
        yield
    finally:
        with _quiet_lock:
            _quiet_depth -= 1
            if _quiet_depth == 0 and _quiet_saved is not None:
                cv2.utils.logging.setLogLevel(_quiet_saved)
                _quiet_saved = None


def _resized(img: np.ndarray, new_height: int, new_width: int) -> np.ndarray:
    if new_height > 0 and new_width > 0:
        return cv2.resize(img, (new_width, new_height), interpolation=cv2.INTER_LINEAR)
    return img


def read_image(path: str, new_height: int = 0, new_width: int = 0, is_color: bool = True
               ) -> np.ndarray | None:
    """HxWxC (colour) or HxW (grey) uint8, or None when OpenCV cannot read the file."""
    flag = cv2.IMREAD_COLOR if is_color else cv2.IMREAD_GRAYSCALE
    if not os.path.isfile(path):  # (imread would warn)
        return None
    with opencv_quiet():
        img = cv2.imread(path, flag)
    if img is None:
        return None
    return _resized(img, new_height, new_width)


_WINDOWS_DRIVE = re.compile(r"^[A-Za-z]:[\\/]")


def why_unreadable(name: str, path: str) -> tuple[str, str]:
    """(message, hint) for a listed image ``name`` (root_folder + the list's name) that
    read_image could not read at ``path`` (where it was looked for): Caffe stops with
    "Could not load <name>" in both cases; here a missing file and a file OpenCV cannot
    decode are told apart, and a name written on Windows is recognised."""
    if os.path.isfile(path):
        size = os.path.getsize(path)
        return (f"could not read image {name!r} ({size} bytes): OpenCV cannot decode it (the "
                "file is truncated, damaged or not an image)",
                "replace the file, or remove its line from the list (from every list naming "
                "it: a pair goes from both lists)")
    if os.path.isdir(path):
        return (f"could not read image {name!r}: it is a folder",
                "list image files, one 'path label' per line")
    hint = f"looked for {os.path.abspath(path)} (root_folder + the listed name, relative to "
    hint += "the working directory, as in Caffe)"
    if _WINDOWS_DRIVE.match(name):
        hint += "; the name is a Windows path: write the paths as they are on this machine"
    elif "\\" in name:
        fixed = name.replace("\\", "/")
        there = " (that file exists)" if os.path.isfile(
            path[: len(path) - len(name)] + fixed) else ""
        hint += (f"; the name has backslashes (a list written on Windows): write "
                 f"{fixed!r}{there}, e.g. sed -i 's#\\\\#/#g' on the list")
    return f"could not read image {name!r}: the file is not there", hint


def decode_image(data: bytes, force_color: bool = False, force_gray: bool = False
                 ) -> np.ndarray | None:
    """Decode an encoded Datum's bytes (DecodeDatumToCVMat[Native])."""
    if force_color:
        flag = cv2.IMREAD_COLOR
    elif force_gray:
        flag = cv2.IMREAD_GRAYSCALE
    else:
        flag = cv2.IMREAD_UNCHANGED
    with opencv_quiet():
        return cv2.imdecode(np.frombuffer(data, dtype=np.uint8), flag)


def to_chw(img: np.ndarray) -> np.ndarray:
    """An OpenCV HxW[xC] image as CxHxW (same dtype): a strided view, not a copy (the
    Transformer makes the one float32 copy)."""
    if img.ndim == 2:
        return img[None]
    return img.transpose(2, 0, 1)


__all__ = ["decode_image", "read_image", "to_chw", "why_unreadable"]
