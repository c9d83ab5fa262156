"""The crop a data layer's transform_param asks for, as (height, width); 0 on an axis
leaves that axis whole.

* BVLC: ``crop_size``, the same on both axes.
* Cysu/caffe (dgd_person_reid): ``crop_height`` / ``crop_width`` (fields 8 / 9; kept aside
  when the net is read with our schema, typed by the fork's proto with ``--proto``). Each
  axis on its own, falling back to crop_size when 0 (data_transformer.cpp:
  ``crop_height() > 0 ? crop_height() : crop_size``); the offsets are drawn as crop_size's
  (mirror, then height, then width), the centre in TEST; an image smaller than the crop is
  an error, as crop_size's.
* hszhao/PSPNet and DeepLab-v2 spell theirs the same (fields 10 / 9) but read them only in
  ImageSegData (TransformImgAndSeg, which pads a smaller image with the mean values), with
  their own rule (:func:`seg_crop_hw`): crop_size, or both crop_height and crop_width and
  no crop_size. On Data / ImageData the names take Cysu's meaning, the only fork whose
  Data / ImageData read them.
* weiliu89/caffe (SSD): ``crop_h`` / ``crop_w`` (fields 11 / 12 of our schema), read by the
  transform of decoded images (ImageData, encoded Data records): crop_size wins; the crop
  is made only when both are set.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from caffe2torch.errors import DataError

RECT_FIELDS = ("transform_param.crop_height", "transform_param.crop_width")


def crop_hw(param: Any, extras: Mapping[str, Any] | None = None,
            where: str = "") -> tuple[int, int]:
    """(crop height, crop width) of transform_param ``param`` and the fork fields the reader
    kept for its layer (``extras``, by dotted path)."""
    size = int(param.crop_size)
    extras = extras or {}
    rect = {name: _count(extras[name], name, where) for name in RECT_FIELDS if name in extras}
    ssd_h, ssd_w = int(getattr(param, "crop_h", 0)), int(getattr(param, "crop_w", 0))
    if rect and (ssd_h or ssd_w):
        raise DataError(f"{where}: transform_param sets both crop_height/crop_width "
                        "(Cysu/caffe, PSPNet) and crop_h/crop_w (SSD), two forks' crops",
                        hint="keep one fork's pair")
    if rect:
        h = rect.get(RECT_FIELDS[0], 0) or size
        w = rect.get(RECT_FIELDS[1], 0) or size
        return h, w
    if ssd_h or ssd_w:
        if size:  # SSD: crop_size overrides crop_h / crop_w
            return size, size
        if not (ssd_h and ssd_w):
            # SSD's blob shape takes the one set while its transform crops neither axis:
            # the fork stops on the shape check
            raise DataError(f"{where}: transform_param sets only "
                            f"{'crop_h' if ssd_h else 'crop_w'}: SSD's transform crops only "
                            "when both crop_h and crop_w are set", hint="set both")
        return ssd_h, ssd_w
    return size, size


def seg_crop_hw(has_size: bool, size: int, extras: Mapping[str, Any] | None = None,
                where: str = "") -> tuple[int, int]:
    """ImageSegData's crop (DeepLab-v2 / PSPNet, TransformImgAndSeg and DataLayerSetUp):
    ``crop_size`` on both axes, or ``crop_height`` x ``crop_width``, which must come
    together and without crop_size (the fork's CHECK). (0, 0) is no crop; the fork crops
    only when both sides are non-zero."""
    extras = extras or {}
    rect = {name: _count(extras[name], name, where) for name in RECT_FIELDS if name in extras}
    if rect and (has_size or len(rect) != 2):
        raise DataError(f"{where}: must either specify crop_size or both crop_height and "
                        "crop_width", hint="ImageSegData (DeepLab-v2, PSPNet) takes "
                        "crop_size alone or the pair crop_height / crop_width alone")
    if rect:
        return rect[RECT_FIELDS[0]], rect[RECT_FIELDS[1]]
    return (size, size) if has_size else (0, 0)


def _count(value: Any, name: str, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise DataError(f"{where}: {name} must be a non-negative integer, got {value!r}")
    return int(value)


__all__ = ["RECT_FIELDS", "crop_hw", "seg_crop_hw"]
