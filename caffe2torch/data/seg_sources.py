"""ImageSegData (DeepLab-v2, hszhao/PSPNet; image_seg_data_layer.cpp) as a data source:
rows of (image, label map, image size) from an image / label list.

Reproduced from the fork (its two copies are the same):

* the list (data.pairlist): ``image [label]`` per line; ``image_data_param.label_type``
  (the forks' field 16, default IMAGE) says what the second name is: PIXEL, a label image
  read in grey (cv::IMREAD_GRAYSCALE: a colour or palette PNG becomes its luminance, as in
  the fork) and resized like the image (new_height / new_width, INTER_LINEAR, as the
  fork's ReadImageToCVMat resizes both); IMAGE, one integer class filling the map; NONE,
  a map of ``ignore_label`` (field 15, default 255). Map values are 8-bit (cv::Scalar
  saturates the IMAGE class and ignore_label to 0..255);
* ``root_folder`` prefixed to both names by plain concatenation; ``is_color``; ``shuffle``
  (every epoch, the first included) and ``rand_skip``, as ImageData's (data.order);
* the image and its label map must have the same size (the fork's CHECK_EQ);
* the tops: data (C, h, w) and label (1, h, w), (h, w) the crop, else new_height x
  new_width, else the first listed image's size (the fork reads the first image after
  its shuffle and rand_skip; here the first listed one, as for ImageData), and the third
  top ``data_dim`` (1, 1, 2): the image's (resized) height and width, each capped at the
  top's, in float;
* the transform (data.seg_transform): mirror, scale_factors, padding, crop, mean, scale.

Unreadable images and label images are BadItemErrors naming the list line (the fork only
logs them and then stops on a size check); the feeder's ``skip_bad`` skips them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from caffe2torch.data.images import read_image, why_unreadable
from caffe2torch.data.listfile import atoi, read_list_text
from caffe2torch.data.pairlist import PairEntry, label_type_name, parse_seg_list
from caffe2torch.data.seg_transform import SegTransform, saturate_u8
from caffe2torch.data.source_base import BadItemError, Source, _join
from caffe2torch.data.transform import Draws
from caffe2torch.errors import DataError

LABEL_TYPE = "image_data_param.label_type"
IGNORE_LABEL = "image_data_param.ignore_label"


def ignore_label_value(value: Any, where: str) -> int:
    if value is None:
        return 255
    if isinstance(value, bool) or not isinstance(value, int):
        raise DataError(f"{where}: image_data_param.ignore_label must be an integer, got "
                        f"{value!r}")
    return int(value)


def seg_top_hw(crop: tuple[int, int], new_hw: tuple[int, int],
               first: tuple[int, int] | None) -> tuple[int, int] | None:
    """The data and label tops' height and width (DataLayerSetUp): the crop when both
    sides are set, else the first image's size (read with new_height / new_width)."""
    if crop[0] > 0 and crop[1] > 0:
        return crop
    if new_hw[0] > 0 and new_hw[1] > 0:
        return new_hw
    return first


class ImageSegSource(Source):
    """An ImageSegData layer (see the module doc)."""

    type = "ImageSegData"

    def __init__(self, layer: Any, phase: str, cwd: str) -> None:
        super().__init__(layer, phase, cwd)
        p = layer.image_data_param
        self._read_image_list_settings(p)
        self.transform = SegTransform(layer.transform_param, phase, f"layer '{self.layer}'")
        self.label_type = "IMAGE"
        self.ignore_label = 255
        self._text = read_list_text(_join(cwd, p.source), p.source)
        self._entries: list[PairEntry] | None = None
        self.top_hw: tuple[int, int] = (0, 0)

    def take_extras(self, extras: Mapping[str, Any]) -> None:
        """label_type, ignore_label, crop_height / crop_width, scale_factors; then the list
        is parsed (how depends on label_type) and the tops' size fixed."""
        super().take_extras(extras)
        where = f"layer '{self.layer}'"
        self.label_type = label_type_name(extras.get(LABEL_TYPE), where)
        self.ignore_label = ignore_label_value(extras.get(IGNORE_LABEL), where)
        self._entries = parse_seg_list(self._text, self.label_type, self.source)
        t = self.transform
        hw = seg_top_hw((t.crop_h, t.crop_w), (self.new_height, self.new_width), None)
        self.top_hw = hw if hw is not None else self._first_size()

    @property
    def entries(self) -> list[PairEntry]:
        if self._entries is None:
            self.take_extras({})
        assert self._entries is not None
        return self._entries

    def _first_size(self) -> tuple[int, int]:
        img = self._image(0)
        return int(img.shape[0]), int(img.shape[1])

    def __len__(self) -> int:
        return len(self.entries)

    def describe(self, index: int) -> str:
        return f"{self.source}:{self.entries[index].line}"

    def _read(self, name: str, is_color: bool, what: str, line: int) -> np.ndarray:
        path = self.root + name  # plain concatenation, as the fork does
        img = read_image(_join(self.cwd, path), self.new_height, self.new_width, is_color)
        if img is None:
            message, hint = why_unreadable(path, _join(self.cwd, path))
            raise BadItemError(f"{what}: {message}", path=self.source, line=line, hint=hint)
        return img

    def _image(self, index: int) -> np.ndarray:
        e = self.entries[index]
        img = self._read(e.image, self.is_color, "image", e.line)
        return img if img.ndim == 3 else img[:, :, None]

    def _label_map(self, e: PairEntry, shape: tuple[int, int]) -> np.ndarray:
        if self.label_type == "PIXEL":
            seg = self._read(e.label, False, "label image", e.line)
            if seg.shape != shape:
                raise BadItemError(
                    f"the label image {e.label!r} is {seg.shape[0]}x{seg.shape[1]} but the "
                    f"image {e.image!r} is {shape[0]}x{shape[1]}", path=self.source,
                    line=e.line, hint="a label map has one value per image pixel: check "
                    "that the line pairs the right files")
            return seg
        if self.label_type == "IMAGE":
            value = atoi(e.label)
            assert value is not None  # parse_seg_list checked it
            return np.full(shape, saturate_u8(value), dtype=np.uint8)
        return np.full(shape, saturate_u8(self.ignore_label), dtype=np.uint8)

    def load(self, index: int, rng: Draws | None = None,
             out: list[np.ndarray] | None = None) -> list[np.ndarray]:
        e = self.entries[index]
        img = self._image(index)
        seg = self._label_map(e, (int(img.shape[0]), int(img.shape[1])))
        data, label = self.transform(img, seg, self.top_hw, self.ignore_label, rng,
                                     f"{self.source}:{e.line}", out=out)
        oh, ow = self.top_hw
        dim = np.array([[[min(oh, img.shape[0]), min(ow, img.shape[1])]]], dtype=np.float32)
        return [data, label, dim][: len(self.tops)]


__all__ = ["IGNORE_LABEL", "LABEL_TYPE", "ImageSegSource", "ignore_label_value", "seg_top_hw"]
