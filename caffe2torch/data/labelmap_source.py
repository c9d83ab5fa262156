"""ImageLabelmapData (s9xie/hed; image_labelmap_data_layer.cpp) as a data source: rows of
(image, edge map) from an ``image label_map`` list (data.pairlist).

Reproduced from the fork:

* both files are read at their own size (the image with ``is_color``, the map in grey),
  must have the same height and width (the fork's CHECK), then are resized to
  new_height x new_width when set (INTER_LINEAR, both);
* the label is ``map / 255`` as OpenCV rounds it on 8 bits: 1 where the map is >= 128, 0
  elsewhere (the fork's "consensus sampling" trick), in float;
* the image goes through the fork's LocTransform, BVLC's transform with one difference:
  the crop (``crop_size``) is random in every phase; the mirror coin, then the height and
  width offsets, are drawn for the image and applied to the label map as well
  (LabelmapTransform: no mean, no scale);
* the tops: data (C, h, w), label (1, h, w), (h, w) the crop, else the size of the first
  image of each batch (the fork reshapes the batch to it); the other images of the batch
  must have that size (the fork's CHECK_EQ; the feeder says which image differs).

Random draws are caffe2torch's own (the feeder's per-row draws), not Caffe's generator.
Unreadable files are BadItemErrors naming the list line (the fork stops on a CHECK).
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from caffe2torch.data.images import read_image, to_chw, why_unreadable
from caffe2torch.data.listfile import read_list_text
from caffe2torch.data.pairlist import PairEntry, parse_labelmap_list
from caffe2torch.data.source_base import BadItemError, Source, _join
from caffe2torch.data.transform import Draws, Transformer, _rng


class _Recorded:
    """Draws passed through and kept, to be replayed for the label map."""

    def __init__(self, rng: Draws) -> None:
        self.rng = rng
        self.values: list[int] = []

    def integers(self, high: int) -> int:
        value = int(self.rng.integers(high))
        self.values.append(value)
        return value


class _Replay:
    def __init__(self, values: list[int]) -> None:
        self.values = list(values)

    def integers(self, high: int) -> int:
        return self.values.pop(0)


def edge_labels(gt: np.ndarray) -> np.ndarray:
    """``cv_gt / 255`` on an 8-bit map: saturate_cast rounds x / 255 to 0 or 1."""
    return (gt >= 128).astype(np.uint8)


class LabelmapSource(Source):
    """An ImageLabelmapData layer (see the module doc)."""

    type = "ImageLabelmapData"

    def __init__(self, layer: Any, phase: str, cwd: str) -> None:
        super().__init__(layer, phase, cwd)
        from caffe2torch.proto import caffe_pb2

        p = layer.image_data_param
        self._read_image_list_settings(p)
        self.entries: list[PairEntry] = parse_labelmap_list(
            read_list_text(_join(cwd, p.source), p.source), p.source)
        where = f"layer '{self.layer}'"
        t = layer.transform_param
        # LocTransform crops at random in both phases: BVLC's TRAIN-phase transform
        self.transform = Transformer(t, "TRAIN", cwd, where)
        self.label_transform = Transformer(
            caffe_pb2.TransformationParameter(crop_size=t.crop_size, mirror=t.mirror),
            "TRAIN", cwd, where)

    def take_extras(self, extras: Any) -> None:
        """The fork reads no field our schema lacks (the build refuses any it is given)."""

    def __len__(self) -> int:
        return len(self.entries)

    def describe(self, index: int) -> str:
        return f"{self.source}:{self.entries[index].line}"

    def _read(self, name: str, is_color: bool, what: str, line: int) -> np.ndarray:
        path = self.root + name  # plain concatenation, as the fork does
        img = read_image(_join(self.cwd, path), 0, 0, is_color)
        if img is None:
            message, hint = why_unreadable(path, _join(self.cwd, path))
            raise BadItemError(f"{what}: {message}", path=self.source, line=line, hint=hint)
        return img

    def load(self, index: int, rng: Draws | None = None,
             out: list[np.ndarray] | None = None) -> list[np.ndarray]:
        e = self.entries[index]
        img = self._read(e.image, self.is_color, "image", e.line)
        gt = self._read(e.label, False, "label map", e.line)
        if img.shape[:2] != gt.shape:
            raise BadItemError(
                f"the label map {e.label!r} is {gt.shape[0]}x{gt.shape[1]} but the image "
                f"{e.image!r} is {img.shape[0]}x{img.shape[1]}", path=self.source,
                line=e.line, hint="GT image size should be equal to true image size: check "
                "that the line pairs the right files")
        if self.new_height > 0 and self.new_width > 0:
            size = (self.new_width, self.new_height)
            img = cv2.resize(img, size, interpolation=cv2.INTER_LINEAR)
            gt = cv2.resize(gt, size, interpolation=cv2.INTER_LINEAR)
        item = f"{self.source}:{e.line}"
        recorded = _Recorded(_rng(rng))
        data = self.transform(to_chw(img), recorded, item, out=out[0] if out else None)
        label = self.label_transform(edge_labels(gt)[None], _Replay(recorded.values), item,
                                     out=out[1] if out and len(out) > 1 else None)
        return [data, label][: len(self.tops)]


__all__ = ["LabelmapSource", "edge_labels"]
