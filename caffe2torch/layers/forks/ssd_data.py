"""SSD's ``AnnotatedData`` layer (weiliu89/caffe): images with boxes from an LMDB of
AnnotatedDatum records.

The layer is a data layer: its tops are fed from outside the graph. At build time the image
top is (batch_size, C, H, W) with H x W from ``transform_param.resize_param`` (C and, when
there is no resize, H x W come from the records: give them with ``input_shapes`` or build
the net from :class:`AnnotatedDataReader`'s first batch); the label top has the fork's
set-up shape (1, 1, 1, 8).

:class:`AnnotatedDataReader` reads the records in database order (the fork's DataReader,
cycling) and implements the fork's non-augmenting path, the one its TEST nets take:

* the image is decoded (DecodeDatumToCVMat), resized with ``resize_param`` (WARP to
  height x width with the one OpenCV ``interp_mode``, LINEAR when none), then mean and scale
  as every Caffe data layer;
* the label top is (1, 1, K, 8): one row [item, group label, instance id, xmin, ymin, xmax,
  ymax, difficult] per box of the batch, boxes clipped to [0, 1] and dropped when nothing
  is left of them (ProjectBBox onto the whole image); (1, 1, 1, 8) of -1 when the batch has
  no box.

The augmenting path (the fork's TRAIN nets: distort_param, expand_param, batch_sampler
crops with their sample_constraint, emit_constraint, random interp_mode, mirror) is the
fork's on encoded records, stage by stage (ssd_augment, ssd_boxes, ssd_distort). Its
random draws are caffe2torch's own, not Caffe's: the reader draws one seed per row from
its ``seed`` (``caffe2torch train`` gives the solver's random_seed) and the row's choices
from RowDraws(row seed), so a seed gives the same batches every run. A batch_sampler whose
samplers keep the whole image (MobileNet-SSD's test net has one) takes the
non-augmenting path, where the fork still "crops" an encoded record to the whole image
(DataTransformer::CropImage) and stores the crop as JPEG again before decoding it: that
round trip is reproduced (:func:`whole_image_crop`), so such a net sees JPEG-recompressed
pixels even from PNG records, as in Caffe. Refused
with the setting named: noise_param, crop_size / crop_h / crop_w, resize modes other
than WARP; and, in the augmenting path, raw records and expand_param with a mean_file.

``caffe2torch train`` / ``test`` (runtime.feeding) read a net's one AnnotatedData layer
through :class:`AnnotatedDataReader` (one rank of parallel solvers reads every
world_size-th record).
"""

from __future__ import annotations

import os
from typing import Any

import cv2
import numpy as np
import torch
from torch import nn

from caffe2torch.data.images import decode_image, to_chw
from caffe2torch.data.order import RowDraws
from caffe2torch.data.sources import BadItemError, DatumSource
from caffe2torch.data.transform import Draws
from caffe2torch.errors import DataError
from caffe2torch.layers.bvlc.inputs import DataInput
from caffe2torch.layers.forks.ssd_augment import INTERP as _INTERP
from caffe2torch.layers.forks.ssd_augment import Augmenter
from caffe2torch.layers.registry import BuildContext, Shape, register_layer
from caffe2torch.numerics import f32
from caffe2torch.proto import caffe_pb2

LABEL_SETUP_SHAPE = (1, 1, 1, 8)


def augmenting_settings(layer: Any) -> list[str]:
    """The settings of ``layer`` that need the fork's random augmentation (empty: the
    non-augmenting path reproduces it)."""
    t = layer.transform_param
    found = [f"transform_param.{name}" for name in ("distort_param", "expand_param",
                                                     "emit_constraint") if t.HasField(name)]
    if t.mirror:
        found.append("transform_param.mirror")
    if len(set(t.resize_param.interp_mode)) > 1:
        found.append("resize_param.interp_mode (several: a random choice)")
    if any(not _identity_sampler(bs) for bs in layer.annotated_data_param.batch_sampler):
        found.append("annotated_data_param.batch_sampler (random crops)")
    return found


def refused_settings(layer: Any) -> list[str]:
    """The settings of ``layer`` that neither path reproduces."""
    t = layer.transform_param
    found = ["transform_param.noise_param (no SSD net uses it)"] if t.HasField(
        "noise_param") else []
    if t.crop_size or t.crop_h or t.crop_w:
        # the fork's crop also moves and clips every box (TransformAnnotation's crop_bbox);
        # Data / ImageData crops (data.crop) carry no boxes
        found.append("transform_param.crop_size / crop_h / crop_w (SSD crops the boxes "
                     "with the image)")
    if t.HasField("resize_param") and (t.resize_param.resize_mode
                                       != caffe_pb2.ResizeParameter.WARP):
        found.append("resize_param.resize_mode (only WARP)")
    return found


def _identity_sampler(bs: Any) -> bool:
    s = bs.sampler
    return bool(bs.use_original_image) and (s.min_scale, s.max_scale, s.min_aspect_ratio,
                                            s.max_aspect_ratio) == (1.0, 1.0, 1.0, 1.0)


def whole_image_crop(layer: Any) -> bool:
    """Whether the fork crops every record to the whole image on the non-augmenting path:
    GenerateBatchSamples finds a unit box whenever a sampler that keeps the whole image
    has trials and room for a sample, and the layer then crops to a found box."""
    return any(_identity_sampler(bs) and bs.max_trials > 0
               and not (bs.HasField("max_sample") and bs.max_sample == 0)
               for bs in layer.annotated_data_param.batch_sampler)


def _resize_size(layer: Any) -> tuple[int, int] | None:
    t = layer.transform_param
    if t.HasField("resize_param") and t.resize_param.height and t.resize_param.width:
        return int(t.resize_param.height), int(t.resize_param.width)
    return None


def clip_boxes(boxes: np.ndarray) -> np.ndarray:
    """ProjectBBox onto the whole image: boxes entirely outside [0, 1] are dropped, the
    others clipped; a box of zero size after clipping is dropped too."""
    if boxes.size == 0:
        return boxes.reshape(0, 8)
    x0, y0, x1, y1 = (boxes[:, 3 + k] for k in range(4))
    inside = ~((x0 >= 1) | (x1 <= 0) | (y0 >= 1) | (y1 <= 0))
    out = boxes[inside].copy()
    out[:, 3:7] = np.clip(out[:, 3:7], f32(0), f32(1))
    w = out[:, 5] - out[:, 3]
    h = out[:, 6] - out[:, 4]
    size = np.where((out[:, 5] < out[:, 3]) | (out[:, 6] < out[:, 4]), f32(0), w * h)
    return out[size > 0]


class AnnotatedSource(DatumSource):
    """An AnnotatedData layer's LMDB: each load gives the transformed image and its boxes
    as (K, 8) rows with item 0."""

    type = "AnnotatedData"

    def __init__(self, layer: Any, phase: str, cwd: str) -> None:
        refused = refused_settings(layer)
        if refused:
            raise DataError(
                f"layer '{layer.name}' (AnnotatedData): these settings of the fork's "
                f"augmenting path are not reproduced ({', '.join(refused)})",
                hint="batch_sampler crops, distort_param, expand_param, emit_constraint, "
                "WARP resize with random interp_mode, and mirror are; remove the others "
                "to read the records",
            )
        super().__init__(layer, phase, cwd)
        where = f"layer '{layer.name}'"
        self.augment = Augmenter(layer, where) if augmenting_settings(layer) else None
        self.recompress = self.augment is None and whole_image_crop(layer)
        self.size = _resize_size(layer)
        r = layer.transform_param.resize_param
        self.interp = _INTERP[r.interp_mode[0]] if len(r.interp_mode) else cv2.INTER_LINEAR
        self.anno_type = (int(layer.annotated_data_param.anno_type)
                          if layer.annotated_data_param.HasField("anno_type") else None)
        self._boxes: dict[bytes, np.ndarray] = {}

    def _get(self, key: bytes) -> bytes:
        """The inner Datum's bytes; the record's boxes are kept for :meth:`load`."""
        anno = caffe_pb2.AnnotatedDatum()
        try:
            anno.ParseFromString(super()._get(key))
        except Exception:
            raise DataError(f"record {key!r} is not an AnnotatedDatum", path=self.source) from None
        kind = self.anno_type if self.anno_type is not None else anno.type
        if kind != caffe_pb2.AnnotatedDatum.BBOX:
            raise DataError(f"record {key!r}: unknown annotation type {kind}", path=self.source)
        rows = [
            [0.0, g.group_label, a.instance_id, a.bbox.xmin, a.bbox.ymin, a.bbox.xmax,
             a.bbox.ymax, float(a.bbox.difficult)]
            for g in anno.annotation_group for a in g.annotation
        ]
        self._boxes[key] = np.asarray(rows, dtype=f32).reshape(-1, 8)
        if self.recompress and anno.datum.encoded:
            self._recompress(anno.datum, key)
        return anno.datum.SerializeToString()

    def _recompress(self, datum: Any, key: bytes) -> None:
        """CropImage to the whole image of an encoded record: decoded (natively, or as
        force_color / force_gray ask), stored as JPEG again (EncodeCVMatToDatum)."""
        img = decode_image(datum.data, self.force_color, self.force_gray)
        if img is None:
            raise BadItemError(f"could not decode the image of record {key!r}",
                               path=self.source)
        ok, buf = cv2.imencode(".jpg", img)
        if not ok:
            raise BadItemError(f"record {key!r}: OpenCV could not store the whole-image "
                               "crop as JPEG", path=self.source)
        datum.data = buf.tobytes()

    def load(self, index: int, rng: Draws | None = None,
             out: list[np.ndarray] | None = None) -> list[np.ndarray]:
        if self.augment is not None:
            return self._augmented(index, rng if rng is not None else _DEFAULT_RNG, out)
        chw, _ = self.datum_image(index)
        if self.size is not None:
            hwc = np.ascontiguousarray(chw.transpose(1, 2, 0))
            resized = cv2.resize(hwc, (self.size[1], self.size[0]), interpolation=self.interp)
            chw = resized[None] if resized.ndim == 2 else resized.transpose(2, 0, 1)
        data = self.transform(chw, rng, self.describe(index), out=out[0] if out else None)
        return [data, clip_boxes(self._boxes.pop(self.keys[index]))]


    def _augmented(self, index: int, rng: Draws,
                   out: list[np.ndarray] | None) -> list[np.ndarray]:
        """The fork's augmenting path on record ``index`` (encoded records only: the
        fork's raw-Datum path neither distorts nor resizes)."""
        assert self.augment is not None
        key = self.keys[index]
        datum = caffe_pb2.Datum()
        datum.ParseFromString(self._get(key))
        boxes = self._boxes.pop(key)
        if not datum.encoded:
            raise BadItemError(f"record {key!r} holds raw pixels: the fork's augmenting "
                               "path needs encoded images (its raw path skips "
                               "resize_param)", path=self.source,
                               hint="build the LMDB with encoded images "
                               "(create_annoset.py --encode-type jpg)")
        img = decode_image(datum.data, self.force_color, self.force_gray)
        if img is None:
            raise BadItemError(f"could not decode the image of record {key!r}",
                               path=self.source)
        img, boxes, mirror = self.augment(img, boxes, rng, encoded=True)
        data = self.transform(to_chw(img), _Coin(int(mirror)), self.describe(index),
                              out=out[0] if out else None)
        return [data, boxes]


class _Coin:
    """The mirror coin already drawn, handed to the Transformer as its one draw."""

    def __init__(self, value: int) -> None:
        self.value = value

    def integers(self, high: int, /) -> int:
        return self.value


_DEFAULT_RNG = np.random.default_rng()


class AnnotatedDataReader:
    """Batches of an AnnotatedData layer in the fork's order: ``next_batch()`` gives
    {data top: (B, C, H, W), label top: (1, 1, K, 8)}. ``net.feeder = reader.next_batch``
    makes ``net()`` draw them."""

    def __init__(self, layer: Any, phase: str = "TEST", cwd: str | os.PathLike[str] = ".",
                 seed: int | None = None, rank: int = 0, world_size: int = 1) -> None:
        self.source = AnnotatedSource(layer, phase, os.fspath(cwd))
        self.tops = list(layer.top)
        # parallel solvers: rank r reads records r, r + world_size, ... (Caffe's Skip())
        self.position, self.stride = rank % max(len(self.source), 1), world_size
        # one seed per row drawn in order, the row's draws from RowDraws(seed, 0): the
        # same seed gives the same batches
        self.seeds = np.random.default_rng(None if seed is None else [seed, rank])

    @classmethod
    def from_net_param(cls, net_param: Any, phase: str = "TEST",
                       cwd: str | os.PathLike[str] = ".", seed: int | None = None,
                       rank: int = 0, world_size: int = 1) -> AnnotatedDataReader:
        """The reader of the (one) AnnotatedData layer of ``phase``."""
        from caffe2torch.ir import NetState, filter_layers

        kept = [net_param.layer[i] for i in filter_layers(net_param.layer, NetState.of(phase))]
        layers = [ly for ly in kept if ly.type == "AnnotatedData"]
        if len(layers) != 1:
            raise DataError(f"the {phase} net has {len(layers)} AnnotatedData layers, not one")
        return cls(layers[0], phase, cwd, seed, rank, world_size)

    def _next_row(self, load: bool = True) -> list[np.ndarray]:
        draws = RowDraws(int(self.seeds.integers(1 << 62)), 0)
        row = self.source.load(self.position, draws) if load else []
        self.position = (self.position + self.stride) % len(self.source)
        return row

    def skip_batches(self, n: int) -> None:
        """Move on by ``n`` batches without reading them (the records and the draws
        advance as ``n`` calls of next_batch would)."""
        for _ in range(n * self.source.batch_size):
            self._next_row(load=False)

    def next_batch(self) -> dict[str, torch.Tensor]:
        images, boxes = [], []
        for item in range(self.source.batch_size):
            data, item_boxes = self._next_row()
            images.append(data)
            item_boxes[:, 0] = item
            boxes.append(item_boxes)
        shapes = {img.shape for img in images}
        if len(shapes) > 1:
            raise DataError(f"layer '{self.source.layer}': the images of one batch differ in "
                            "size", path=self.source.source, hint="set resize_param height "
                            "and width")
        label = np.concatenate(boxes) if boxes else np.zeros((0, 8), dtype=f32)
        if label.shape[0] == 0:
            label = np.full((1, 8), -1, dtype=f32)
        out = {self.tops[0]: torch.from_numpy(np.stack(images).astype(f32))}
        if len(self.tops) > 1:
            out[self.tops[1]] = torch.from_numpy(label.reshape(1, 1, -1, 8))
        return out

    def close(self) -> None:
        self.source.close()


@register_layer(
    "AnnotatedData", param="annotated_data_param", bottoms=0, tops=(1, 2), data=True,
)
def build_annotated_data(ctx: BuildContext) -> nn.Module:
    p = ctx.layer.data_param
    if p.batch_size <= 0:
        raise ctx.error(f"data_param.batch_size must be positive, got {p.batch_size}")
    given = ctx.options.get("input_shapes") or {}
    tops = list(ctx.layer.top)
    data: Shape | None = tuple(given[tops[0]]) if tops[0] in given else None
    why = (f"an AnnotatedData layer takes its channels from the records of {p.source!r}"
           + ("" if _resize_size(ctx.layer) else " and its size too (no resize_param)"))
    if data is None:  # the label's setup shape is known: only the image top is asked for
        return DataInput(ctx.type, ctx.name, None, why, tops[:1])
    shapes = [data]
    if len(tops) > 1:
        shapes.append(tuple(given.get(tops[1], LABEL_SETUP_SHAPE)))
    return DataInput(ctx.type, ctx.name, shapes, why, tops)
