"""caffe.io: images in and out of nets, and protobuf <-> numpy converters.

Images follow pycaffe's conventions: ``load_image`` gives H x W x K float arrays in
[0, 1] with RGB channel order; a Transformer turns them into the net's layout
(transpose to K x H x W, channel swap to BGR, raw scale to [0, 255], mean subtraction,
input scale). Decoding and resizing use OpenCV (scikit-image's removed ``as_grey`` API is
not needed).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from caffe2torch.pycaffe import schema

# BVLC's caffe.io imports scikit-image, whose io loads PIL.Image: scripts that say `import
# PIL` and then use PIL.Image (py-faster-rcnn's datasets/imdb.py) rely on that. Pillow is
# not a dependency; without it nothing relies on this.
with contextlib.suppress(ImportError):
    import PIL.Image  # noqa: F401

# ---------------------------------------------------------------- protobuf <-> arrays


def _message(name: str) -> Any:
    """A new message ``name`` of the schema in use (a fork's under `run --proto`, where it
    defines one; else ours)."""
    cls = getattr(schema.caffe_pb2(), name, None)
    if cls is None:
        from caffe2torch.proto import caffe_pb2

        cls = getattr(caffe_pb2, name)
    return cls()


def blobproto_to_array(blob: Any, return_diff: bool = False) -> np.ndarray:
    """A BlobProto's data (or diff) as an array in its shape: the legacy
    num/channels/height/width when any is set, else ``shape.dim`` (a single value with no
    shape is a 0-d array; anything else without a shape is a ValueError)."""
    values = np.array(blob.diff if return_diff else blob.data, dtype=np.float32)
    if any(blob.HasField(f) for f in ("num", "channels", "height", "width")):
        return values.reshape(blob.num, blob.channels, blob.height, blob.width)
    return values.reshape(tuple(blob.shape.dim))


def array_to_blobproto(arr: np.ndarray, diff: np.ndarray | None = None) -> Any:
    """An N-d array (and optionally its diff, same shape) as a BlobProto with ``shape``."""
    blob = _message("BlobProto")
    arr = np.asarray(arr)
    blob.shape.dim.extend(int(d) for d in arr.shape)
    blob.data.extend(arr.astype(np.float32).ravel().tolist())
    if diff is not None:
        diff = np.asarray(diff)
        if diff.shape != arr.shape:
            raise ValueError(f"diff shape {diff.shape} differs from data shape {arr.shape}")
        blob.diff.extend(diff.astype(np.float32).ravel().tolist())
    return blob


def arraylist_to_blobprotovector_str(arraylist: Iterable[np.ndarray]) -> bytes:
    """A list of arrays as a serialized BlobProtoVector."""
    vec = _message("BlobProtoVector")
    vec.blobs.extend(array_to_blobproto(a) for a in arraylist)
    return vec.SerializeToString()


def blobprotovector_str_to_arraylist(data: bytes) -> list[np.ndarray]:
    """A serialized BlobProtoVector as a list of arrays."""
    vec = _message("BlobProtoVector")
    vec.ParseFromString(data)
    return [blobproto_to_array(b) for b in vec.blobs]


def array_to_datum(arr: np.ndarray, label: int | None = None) -> Any:
    """A C x H x W array as a Datum: uint8 arrays as bytes in ``data``, anything else as
    ``float_data``; ``label`` set only when given."""
    arr = np.asarray(arr)
    if arr.ndim != 3:
        raise ValueError(f"array_to_datum needs a 3-D (channels x height x width) array, "
                         f"got {arr.ndim}-D")
    datum = _message("Datum")
    datum.channels, datum.height, datum.width = (int(d) for d in arr.shape)
    if arr.dtype == np.uint8:
        datum.data = arr.tobytes()
    else:
        datum.float_data.extend(arr.astype(np.float32).ravel().tolist())
    if label is not None:
        datum.label = int(label)
    return datum


def datum_to_array(datum: Any) -> np.ndarray:
    """A Datum's values as C x H x W (uint8 from ``data``, else float from ``float_data``);
    the label is not part of it."""
    shape = (datum.channels, datum.height, datum.width)
    if len(datum.data):
        return np.frombuffer(datum.data, dtype=np.uint8).reshape(shape)
    return np.array(datum.float_data, dtype=np.float32).reshape(shape)


# ---------------------------------------------------------------- images


def load_image(filename: str, color: bool = True) -> np.ndarray:
    """An image file as H x W x 3 (RGB; ``color=False``: H x W x 1) float32 in [0, 1]."""
    import cv2

    raw = cv2.imread(str(filename), cv2.IMREAD_UNCHANGED)
    if raw is None:
        raise OSError(f"{filename}: cannot read this file as an image (missing, or a "
                      "format OpenCV does not decode)")
    scale = float(np.iinfo(raw.dtype.name).max) if raw.dtype.kind in "ui" else 1.0
    img = raw.astype(np.float32) / scale
    if img.ndim == 3 and img.shape[2] == 4:
        img = img[:, :, :3]  # drop alpha
    if img.ndim == 3:
        img = img[:, :, ::-1]  # OpenCV's BGR -> RGB
        if not color:
            img = img @ np.array([0.2125, 0.7154, 0.0721], dtype=np.float32)  # rgb2gray
    if img.ndim == 2:
        img = img[:, :, np.newaxis]
        if color:
            img = np.tile(img, (1, 1, 3))
    return np.ascontiguousarray(img)


def resize_image(im: np.ndarray, new_dims: Sequence[int] | np.ndarray, interp_order: int = 1
                 ) -> np.ndarray:
    """Resize an H x W x K image to ``new_dims`` (height, width); ``interp_order``: 0
    nearest, 1 bilinear, 3 bicubic. Values keep their range."""
    import cv2

    flags = {0: cv2.INTER_NEAREST, 1: cv2.INTER_LINEAR, 3: cv2.INTER_CUBIC}
    if interp_order not in flags:
        raise ValueError(f"interp_order must be 0 (nearest), 1 (bilinear) or 3 (bicubic), "
                         f"not {interp_order}")
    im = np.asarray(im, dtype=np.float32)
    h, w = int(new_dims[0]), int(new_dims[1])
    if im.shape[:2] == (h, w):
        return im.copy()
    if im.ndim == 2:
        return cv2.resize(im, (w, h), interpolation=flags[interp_order])
    # OpenCV takes up to 512 channels at once: resize wider images in slices
    parts = [cv2.resize(np.ascontiguousarray(im[:, :, k:k + 512]), (w, h),
                        interpolation=flags[interp_order]).reshape(h, w, -1)
             for k in range(0, im.shape[2], 512)]
    return np.concatenate(parts, axis=2).astype(np.float32)


def oversample(images: Iterable[np.ndarray], crop_dims: Sequence[int] | np.ndarray
               ) -> np.ndarray:
    """Ten crops of each H x W x K image: the four corners and the centre, and their
    mirrors; (10 * N) x crop_h x crop_w x K."""
    images = list(images)
    ch, cw = int(crop_dims[0]), int(crop_dims[1])
    crops = []
    for im in images:
        h, w = im.shape[:2]
        starts = [(0, 0), (0, w - cw), (h - ch, 0), (h - ch, w - cw),
                  ((h - ch) // 2, (w - cw) // 2)]
        five = [im[y:y + ch, x:x + cw] for y, x in starts]
        crops.extend(five + [c[:, ::-1] for c in five])
    return np.asarray(crops, dtype=np.float32)


class Transformer:
    """Caffe-layout preprocessing for the inputs of a net: ``Transformer({'data':
    net.blobs['data'].data.shape})``, then the setters, then ``preprocess``."""

    def __init__(self, inputs: Mapping[str, Sequence[int]]) -> None:
        self.inputs = {k: tuple(int(d) for d in v) for k, v in inputs.items()}
        self.transpose: dict[str, tuple[int, ...]] = {}
        self.channel_swap: dict[str, tuple[int, ...]] = {}
        self.raw_scale: dict[str, float] = {}
        self.mean: dict[str, np.ndarray] = {}
        self.input_scale: dict[str, float] = {}

    def _check(self, in_: str) -> None:
        if in_ not in self.inputs:
            raise Exception(f"{in_} is not one of the net inputs: {list(self.inputs)}")

    def preprocess(self, in_: str, data: np.ndarray) -> np.ndarray:
        """An H x W x K image (as load_image gives) -> the net's K x H x W input: resize
        to the input's size, transpose, channel swap, raw scale, mean, input scale."""
        self._check(in_)
        x = np.asarray(data, dtype=np.float32)
        size = self.inputs[in_][2:]
        if x.shape[:2] != size:
            x = resize_image(x, size)
        if in_ in self.transpose:
            x = x.transpose(self.transpose[in_])
        if in_ in self.channel_swap:
            x = x[list(self.channel_swap[in_]), :, :]
        if in_ in self.raw_scale:
            x = x * self.raw_scale[in_]
        if in_ in self.mean:
            x = x - self.mean[in_]
        if in_ in self.input_scale:
            x = x * self.input_scale[in_]
        return np.ascontiguousarray(x, dtype=np.float32)

    def deprocess(self, in_: str, data: np.ndarray) -> np.ndarray:
        """The inverse of preprocess (without the resize)."""
        self._check(in_)
        x = np.array(data, dtype=np.float32).squeeze()
        if in_ in self.input_scale:
            x = x / self.input_scale[in_]
        if in_ in self.mean:
            x = x + self.mean[in_]
        if in_ in self.raw_scale:
            x = x / self.raw_scale[in_]
        if in_ in self.channel_swap:
            x = x[list(np.argsort(self.channel_swap[in_])), :, :]
        if in_ in self.transpose:
            x = x.transpose(tuple(np.argsort(self.transpose[in_])))
        return x

    def set_transpose(self, in_: str, order: Sequence[int]) -> None:
        """Axis order to apply, e.g. (2, 0, 1) for H x W x K -> K x H x W."""
        self._check(in_)
        if len(order) != len(self.inputs[in_]) - 1:
            raise ValueError("Transpose order needs to have the same number of dimensions "
                             "as the input.")
        self.transpose[in_] = tuple(order)

    def set_channel_swap(self, in_: str, order: Sequence[int]) -> None:
        """Channel order to apply after the transpose, e.g. (2, 1, 0) for RGB -> BGR."""
        self._check(in_)
        if len(order) != self.inputs[in_][1]:
            raise ValueError("Channel swap needs to have the same number of dimensions as "
                             "the input channels.")
        self.channel_swap[in_] = tuple(order)

    def set_raw_scale(self, in_: str, scale: float) -> None:
        """Scale applied before the mean (e.g. 255 for [0, 1] images and 0-255 models)."""
        self._check(in_)
        self.raw_scale[in_] = scale

    def set_mean(self, in_: str, mean: np.ndarray) -> None:
        """Mean to subtract: one value per channel (K,), or an image K x H x W (resized to
        the input when its size differs)."""
        self._check(in_)
        mean = np.asarray(mean, dtype=np.float32)
        channels, size = self.inputs[in_][1], self.inputs[in_][2:]
        if mean.ndim == 1:
            if mean.shape[0] != channels:
                raise ValueError("Mean channels incompatible with input.")
            mean = mean[:, np.newaxis, np.newaxis]
        else:
            if mean.ndim == 2:
                mean = mean[np.newaxis]
            if mean.ndim != 3:
                raise ValueError("Mean shape invalid")
            if mean.shape[0] != channels:
                raise ValueError("Mean shape incompatible with input shape.")
            if mean.shape[1:] != size:
                mean = resize_image(mean.transpose(1, 2, 0), size).reshape(
                    *size, channels).transpose(2, 0, 1)
        self.mean[in_] = mean

    def set_input_scale(self, in_: str, scale: float) -> None:
        """Scale applied after the mean (e.g. 0.017 for some ImageNet models)."""
        self._check(in_)
        self.input_scale[in_] = scale
