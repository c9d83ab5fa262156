"""The image / label-map data layers of the segmentation and edge-detection forks:
ImageSegData (DeepLab-v2, hszhao/PSPNet; V1 ``type: IMAGE_SEG_DATA`` in DeepLab's nets)
and ImageLabelmapData (s9xie/hed).

As every data layer here, the module only tells the tops' shapes and passes fed tensors
through; the rows are read by caffe2torch.data (data.seg_sources, data.labelmap_source),
which ``caffe2torch train`` / ``test`` and ``net()`` use for these types.

* ImageSegData: data (batch, C, h, w), label (batch, 1, h, w), data_dim (batch, 1, 1, 2)
  (the fork makes a third top even when the net names two: an unnamed one is left out
  here). C is 3, or 1 with ``is_color: false``; (h, w) is the crop (crop_size, or
  crop_height x crop_width), else new_height x new_width, else the first listed image's
  size. The forks' fields our schema lacks are read from the kept fields (or a fork
  schema given with --proto): image_data_param.label_type / ignore_label,
  transform_param.crop_height / crop_width / scale_factors.
* ImageLabelmapData: data (batch, C, h, w), label (batch, 1, h, w), (h, w) the crop_size,
  else new_height x new_width, else the first listed image's size (the fork sizes each
  batch by its first image; later batches may differ).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from torch import nn

from caffe2torch.data.crop import RECT_FIELDS, seg_crop_hw
from caffe2torch.data.pairlist import label_type_name
from caffe2torch.data.seg_sources import (
    IGNORE_LABEL,
    LABEL_TYPE,
    ignore_label_value,
    seg_top_hw,
)
from caffe2torch.data.seg_transform import SCALE_FACTORS, read_scale_factors
from caffe2torch.errors import DataError
from caffe2torch.layers.bvlc.inputs import _check_batch, _data_module, _first_image_size
from caffe2torch.layers.registry import BuildContext, register_layer

T = TypeVar("T")


def _checked(ctx: BuildContext, read: Callable[[], T]) -> T:
    """``read()``, its DataError given as the layer's BuildError."""
    try:
        return read()
    except DataError as e:
        raise ctx.error(e.message.removeprefix(": "), hint=e.hint) from None


def _common(ctx: BuildContext) -> tuple[Any, int]:
    """Checks both layers share; the image channels."""
    p = ctx.param
    _check_batch(ctx, p.batch_size)
    if (p.new_height > 0) != (p.new_width > 0):
        raise ctx.error("new_height and new_width must be set together (or neither)")
    return p, 3 if p.is_color else 1


def _check_means(ctx: BuildContext, channels: int) -> None:
    n = len(ctx.layer.transform_param.mean_value)
    if n not in (0, 1, channels):
        raise ctx.error(f"{n} mean_value entries for {channels} channel(s)",
                        hint="specify either 1 mean_value or as many as channels")


@register_layer("ImageSegData", param="image_data_param", bottoms=0, tops=(1, 3), data=True,
                aliases=("IMAGE_SEG_DATA",))
def build_image_seg_data(ctx: BuildContext) -> nn.Module:
    p, channels = _common(ctx)
    where = ""  # ctx.error names the layer
    _checked(ctx, lambda: label_type_name(ctx.extra_field(LABEL_TYPE), where))
    _checked(ctx, lambda: ignore_label_value(ctx.extra_field(IGNORE_LABEL), where))
    factors = ctx.extra_field(SCALE_FACTORS)
    if factors is not None:
        _checked(ctx, lambda: read_scale_factors(factors, where))
    t = ctx.layer.transform_param
    if t.HasField("mean_file"):
        raise ctx.error("ImageSegData does not support mean_file",
                        hint="give the mean as mean_value (one per channel)")
    _check_means(ctx, channels)
    kept = {name: v for name in RECT_FIELDS if (v := ctx.extra_field(name)) is not None}
    crop = _checked(ctx, lambda: seg_crop_hw(t.HasField("crop_size"), int(t.crop_size), kept,
                                             where))
    hw = seg_top_hw(crop, (int(p.new_height), int(p.new_width)), None)
    if hw is None:
        hw = _first_image_size(p, first_token=True)
    if hw is None:
        return _data_module(ctx, None, "without a crop or new_height/new_width the size "
                            f"comes from the first image listed in {p.source!r}, which "
                            "cannot be read here")
    b = int(p.batch_size)
    return _data_module(ctx, [(b, channels, *hw), (b, 1, *hw), (b, 1, 1, 2)])


@register_layer("ImageLabelmapData", param="image_data_param", bottoms=0, tops=2, data=True)
def build_image_labelmap_data(ctx: BuildContext) -> nn.Module:
    p, channels = _common(ctx)
    t = ctx.layer.transform_param
    _check_means(ctx, channels)
    crop = int(t.crop_size)
    hw: tuple[int, int] | None
    if crop > 0:
        hw = (crop, crop)
    elif p.new_height > 0:
        hw = (int(p.new_height), int(p.new_width))
    else:
        hw = _first_image_size(p, first_token=True)
    if hw is None:
        return _data_module(ctx, None, "without crop_size or new_height/new_width the size "
                            f"comes from the first image listed in {p.source!r}, which "
                            "cannot be read here")
    b = int(p.batch_size)
    return _data_module(ctx, [(b, channels, *hw), (b, 1, *hw)])
