"""caffe.coord_map: how coordinates map between the tops of a NetSpec (scale and shift
per spatial axis through Convolution, Pooling, Deconvolution, Crop and pointwise layers),
and ``crop(top_from, top_to)`` to align a top to another with a Crop layer.

A map is (axis, a, b): output coordinate = a * input coordinate + b on the axes from
``axis`` on; pointwise layers map (None, 1, 0).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from caffe2torch.pycaffe.net_spec import Top
from caffe2torch.pycaffe.net_spec import layers as L

PASS_THROUGH_LAYERS = ["AbsVal", "BatchNorm", "Bias", "BNLL", "Dropout", "Eltwise", "ELU",
                       "Log", "LRN", "Exp", "MVN", "Power", "ReLU", "PReLU", "Scale",
                       "Sigmoid", "Split", "TanH", "Threshold"]

CoordMap = tuple[Any, Any, Any]


class UndefinedMapException(Exception):
    """The layer has no coordinate mapping (e.g. InnerProduct)."""


class AxisMismatchException(Exception):
    """Two maps work on different axes."""


def conv_params(fn: Any) -> tuple[int, np.ndarray, np.ndarray, np.ndarray]:
    """(axis, stride, effective kernel extent, pad) of a Convolution-like or Pooling
    layer's settings; the legacy _h/_w fields are refused."""
    p = fn.params.get("convolution_param", fn.params)
    legacy = {"pad_h", "pad_w", "kernel_h", "kernel_w", "stride_h", "stride_w"}
    assert not legacy & set(fn.params), "cropping does not support legacy _h/_w params"
    kernel = np.array(p["kernel_size"], ndmin=1)
    dilation = np.array(p.get("dilation", 1), ndmin=1)
    return (p.get("axis", 1), np.array(p.get("stride", 1), ndmin=1),
            (kernel - 1) * dilation + 1, np.array(p.get("pad", 0), ndmin=1))


def crop_params(fn: Any) -> tuple[int, np.ndarray]:
    p = fn.params.get("crop_param", fn.params)
    return p.get("axis", 2), np.array(p.get("offset", 0), ndmin=1)


def coord_map(fn: Any) -> CoordMap:
    """The map from a layer's bottom coordinates to its top's."""
    t = fn.type_name
    if t in ("Convolution", "Pooling", "Im2col"):
        axis, stride, extent, pad = conv_params(fn)
        return axis, 1 / stride, (pad - (extent - 1) / 2) / stride
    if t == "Deconvolution":
        axis, stride, extent, pad = conv_params(fn)
        return axis, stride, (extent - 1) / 2 - pad
    if t in PASS_THROUGH_LAYERS:
        return None, 1, 0
    if t == "Crop":
        axis, offset = crop_params(fn)
        return axis - 1, 1, -offset
    raise UndefinedMapException


def compose(base: CoordMap, nxt: CoordMap) -> CoordMap:
    """``base`` then ``nxt``: scales multiply, ``nxt``'s shift is scaled by ``base``'s."""
    ax1, a1, b1 = base
    ax2, a2, b2 = nxt
    if ax1 is None:
        ax = ax2
    elif ax2 is None or ax1 == ax2:
        ax = ax1
    else:
        raise AxisMismatchException
    return ax, a1 * a2, a1 * b2 + b1


def inverse(cmap: CoordMap) -> CoordMap:
    ax, a, b = cmap
    return ax, 1 / a, -b / a


def _bottoms(top: Top) -> tuple[Any, ...]:
    """The inputs a map walks through (only the cropped input of a Crop)."""
    return top.fn.inputs[:1] if top.fn.type_name == "Crop" else top.fn.inputs


def coord_map_from_to(top_from: Top, top_to: Top) -> CoordMap:
    """The map from ``top_from``'s coordinates to ``top_to``'s, through their nearest
    common ancestor; RuntimeError when no spatial path joins them."""
    from_maps: dict[Top, CoordMap] = {top_from: (None, 1, 0)}
    frontier = {top_from}
    while frontier:
        top = frontier.pop()
        try:
            for bottom in _bottoms(top):
                from_maps[bottom] = compose(from_maps[top], coord_map(top.fn))
                frontier.add(bottom)
        except UndefinedMapException:
            pass
    to_maps: dict[Top, CoordMap] = {top_to: (None, 1, 0)}
    frontier = {top_to}
    while frontier:
        top = frontier.pop()
        if top in from_maps:
            return compose(to_maps[top], inverse(from_maps[top]))
        try:
            for bottom in _bottoms(top):
                to_maps[bottom] = compose(to_maps[top], coord_map(top.fn))
                frontier.add(bottom)
        except UndefinedMapException:
            continue
    raise RuntimeError("Could not compute map between tops; are they connected by spatial "
                       "layers?")


def crop(top_from: Top, top_to: Top) -> Top:
    """A Crop layer that aligns ``top_from`` to ``top_to`` (same scale, whole offsets)."""
    ax, a, b = coord_map_from_to(top_from, top_to)
    assert (a == 1).all(), f"scale mismatch on crop (a = {a})"
    assert (b <= 0).all(), f"cannot crop negative offset (b = {b})"
    assert (np.round(b) == b).all(), f"cannot crop noninteger offset (b = {b})"
    return L.Crop(top_from, top_to, crop_param=dict(
        axis=ax + 1, offset=[int(v) for v in -np.round(b).astype(int)]))
