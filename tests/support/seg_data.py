"""Small image / label-map datasets written into a test's folder (ImageSegData, HED), and
a DataFeeder over a data layer given as prototxt text (the fork fields kept aside, as
``caffe2torch train`` reads them)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from caffe2torch.data import DataFeeder
from caffe2torch.io import read_net_with_positions
from caffe2torch.runtime.feeding import layer_extras


def code(h: int, w: int, k: int = 0) -> np.ndarray:
    """h x w uint8 whose pixel (y, x) is 16 * y + x + k (unique for h, w < 16)."""
    return (16 * np.arange(h)[:, None] + np.arange(w)[None, :] + k).astype(np.uint8)


def coded_image(h: int, w: int, k: int = 0) -> np.ndarray:
    """h x w x 3 (BGR as OpenCV reads it): channel c is code(h, w, k) + c."""
    return np.stack([code(h, w, k) + c for c in range(3)], axis=2)


def write_pair(folder: Path, name: str, image: np.ndarray, label: np.ndarray) -> str:
    """Write ``name``.png and ``name``_label.png; the list line naming them."""
    folder.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(folder / f"{name}.png"), image)
    cv2.imwrite(str(folder / f"{name}_label.png"), label)
    return f"{folder.name}/{name}.png {folder.name}/{name}_label.png"


def feeder(tmp_path: Path, layer: str, phase: str = "TEST", seed: int = 0,
           **kw: object) -> DataFeeder:
    """A DataFeeder over the one layer written in ``layer`` (a ``layer { }`` block)."""
    path = tmp_path / "data.prototxt"
    path.write_text(layer)
    net, source_map = read_net_with_positions(str(path))
    return DataFeeder(net.layer, phase, cwd=str(tmp_path), seed=seed,
                      extras=layer_extras(net, source_map), **kw)
