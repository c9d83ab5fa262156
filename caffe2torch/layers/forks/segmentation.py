"""Layers of the segmentation forks (hszhao/PSPNet, DeepLab-v2; SegNet): Interp, BN and
Upsample.

* Interp: crop ``-pad_beg`` rows/columns at the start of both axes and ``-pad_end`` at the
  end (only non-positive pads), then bilinear resize with aligned corners exactly as
  caffe_cpu_interp2: ratio r = float(in - 1) / (out - 1) (0 when out == 1), source
  position float(r * o), its integer part i, weight float(position - i), neighbour i + 1
  except on the last row/column, result h0 * (w0 * a + w1 * b) + h1 * (w0 * c + w1 * d)
  in float. The output size comes from, in the fork's order: shrink_factor alone
  ((in - 1) / shrink + 1), zoom_factor alone (in + (in - 1) (zoom - 1)), height and
  width, or shrink then zoom.
* BN (PSPNet's batch norm with its own slope and bias; 4 blobs: slope, bias, mean,
  variance, each (1, C, 1, 1)): y = slope * (x - mean) / sqrt(var + eps) + bias. TEST
  phase or ``frozen`` use the stored statistics; TRAIN uses the batch mean and biased
  variance over (N, H, W) and moves the stored ones: stat = (1 - momentum) * batch +
  momentum * stat. ``frozen`` also freezes slope and bias (no gradient, as the fork).
  The bottom may have 2 or 3 axes (an InnerProduct's (N, C) in person re-id nets): the
  fork's legacy height and width count a missing axis as 1, so the statistics are over
  N (and H), and the blobs are (1, C) or (1, C, 1) so that they broadcast.
  yjxiong/caffe (TSN) and Cysu/caffe shape the four blobs (1, C) whatever the bottom:
  their caffemodels load into a 4-D BN too (``fits_saved``).
  Cysu/caffe's BN (dgd_person_reid) has the same type and fields but stores the moving
  average of (var + eps)^-1/2 in the fourth blob and uses it as is: its caffemodels do not
  give this layer's numbers.
* BN of alexgkendall/caffe-segnet (SegNet, ENet), recognised by its own fields
  (``bn_mode``, ``scale_filler``, ``shift_filler``: read from the kept fields or the
  fork's schema): 2 blobs, scale and shift (1, C, 1, 1). ``bn_mode: LEARN`` (the default)
  normalises with the batch statistics in every phase: mean = E[x] and var = E[x^2] -
  E[x]^2 over (H, W) then N (two gemv calls), y = (x - mean) / sqrt(var + 1e-9) * scale
  + shift; tops 1 and 2, when given, are the batch mean and variance. ``bn_mode:
  INFERENCE`` is y = scale * x + shift (SegNet's compute_bn_statistics.py folds the
  statistics into scale and shift).
* DenseImageData (SegNet): a data layer of image / label-image pairs; tops (batch, C, h,
  w) and (batch, 1, h, w) with h, w from transform_param.crop_size, else crop_height /
  crop_width, else new_height / new_width, else the first listed image.
* Upsample (alexgkendall/caffe-segnet): max-unpooling. Bottom 1 is the mask top of a MAX
  Pooling layer (flat indices into each output plane); top[n, c].flat[mask] = bottom[n, c],
  zero elsewhere, a later bottom element winning when two share an index. The output is
  upsample_h x upsample_w, else H * scale - pad_out_h by W * scale - pad_out_w. The fork's
  gradient is bottom_diff[i] = top_diff[mask[i]] for every i (also for the losers of a
  shared index).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from caffe2torch.errors import BuildError
from caffe2torch.layers.emit import Emit, emitter, num
from caffe2torch.layers.fillers import make_filled
from caffe2torch.layers.portable import portable
from caffe2torch.layers.registry import BuildContext, register_layer
from caffe2torch.numerics import f32

# --------------------------------------------------------------------------- Interp


@dataclass(frozen=True)
class InterpRule:
    """The interp_param fields that are set (None when absent) and the pads."""

    height: int | None
    width: int | None
    zoom: int | None
    shrink: int | None
    pad_beg: int
    pad_end: int

    def output_size(self, h_eff: int, w_eff: int) -> tuple[int, int]:
        """InterpLayer::Reshape's output size for an effective (cropped) input."""
        if self.shrink is not None and self.zoom is None:
            return (h_eff - 1) // self.shrink + 1, (w_eff - 1) // self.shrink + 1
        if self.zoom is not None and self.shrink is None:
            z = self.zoom - 1
            return h_eff + (h_eff - 1) * z, w_eff + (w_eff - 1) * z
        if self.height is not None and self.width is not None:
            return self.height, self.width
        assert self.shrink is not None and self.zoom is not None
        h = (h_eff - 1) // self.shrink + 1
        w = (w_eff - 1) // self.shrink + 1
        z = self.zoom - 1
        return h + (h - 1) * z, w + (w - 1) * z


@portable
def interp_taps(size_in: int, size_out: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """caffe_cpu_interp2's taps per output index, in float32: ratio float(in - 1) / (out - 1)
    (0 when out == 1), source position float(r * o), its integer part i, the neighbour
    i + 1 (i on the last row/column) and the neighbour's weight float(position - i)."""
    ratio = torch.tensor(0.0)
    if size_out > 1:
        ratio = torch.tensor(float(size_in - 1)) / torch.tensor(float(size_out - 1))
    pos = ratio * torch.arange(size_out, dtype=torch.float32)
    index = pos.to(torch.int64)  # positive: truncation is floor
    step = (index < size_in - 1).to(torch.int64)
    return index, index + step, pos - index.to(torch.float32)


@portable
def caffe_interp(
    x: torch.Tensor, size_out: tuple[int, int], pad_beg: int = 0, pad_end: int = 0
) -> torch.Tensor:
    """The segmentation forks' Interp: crop -pad_beg rows/columns at the start of both axes
    and -pad_end at the end (caffe_cpu_interp2 gets x1 = y1 = -pad_beg), then bilinear
    resize of the last two axes to ``size_out`` with caffe_cpu_interp2's float arithmetic:
    h0 * (w0 * a + w1 * b) + h1 * (w0 * c + w1 * d)."""
    h = int(x.shape[-2]) + pad_beg + pad_end
    w = int(x.shape[-1]) + pad_beg + pad_end
    x = x[..., -pad_beg : h - pad_beg, -pad_beg : w - pad_beg]
    if (h, w) == tuple(size_out):
        return x.clone()
    i0, i1, lh = interp_taps(h, size_out[0])
    j0, j1, lw = interp_taps(w, size_out[1])
    i0, i1, j0, j1 = (t.to(x.device) for t in (i0, i1, j0, j1))
    h1, w1 = lh.to(device=x.device, dtype=x.dtype)[:, None], lw.to(device=x.device, dtype=x.dtype)
    h0, w0 = 1.0 - h1, 1.0 - w1  # Dtype(1.) - lambda
    top, bottom = x.index_select(-2, i0), x.index_select(-2, i1)
    upper = w0 * top.index_select(-1, j0) + w1 * top.index_select(-1, j1)
    lower = w0 * bottom.index_select(-1, j0) + w1 * bottom.index_select(-1, j1)
    return h0 * upper + h1 * lower


class CaffeInterp(nn.Module):
    def __init__(self, rule: InterpRule) -> None:
        super().__init__()
        self.rule = rule

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        r = self.rule
        h, w = int(x.shape[-2]), int(x.shape[-1])
        size = r.output_size(h + r.pad_beg + r.pad_end, w + r.pad_beg + r.pad_end)
        return caffe_interp(x, size, r.pad_beg, r.pad_end)

    def extra_repr(self) -> str:
        r = self.rule
        parts = [f"{k}={v}" for k, v in vars(r).items() if v is not None]
        return ", ".join(parts)


@register_layer("Interp", param="interp_param", aliases=("INTERP",))
def build_interp(ctx: BuildContext) -> nn.Module:
    p = ctx.param
    shape = ctx.bottom_shapes[0]
    if len(shape) != 4:
        raise ctx.error(f"needs a 4-D (num, channels, height, width) bottom, got {shape}")
    if p.pad_beg > 0 or p.pad_end > 0:
        raise ctx.error("only non-positive padding (cropping) is supported")

    def opt(name: str) -> int | None:
        return int(getattr(p, name)) if p.HasField(name) else None

    rule = InterpRule(
        height=opt("height"),
        width=opt("width"),
        zoom=opt("zoom_factor"),
        shrink=opt("shrink_factor"),
        pad_beg=int(p.pad_beg),
        pad_end=int(p.pad_end),
    )
    explicit = rule.height is not None and rule.width is not None
    if rule.zoom is None and rule.shrink is None and not explicit:
        raise ctx.error(
            "no output size",
            hint="give zoom_factor, shrink_factor, or both height and width",
        )
    # The fork checks a factor only in the branch of Reshape that uses it.
    uses_shrink = rule.shrink is not None and (rule.zoom is None or not explicit)
    uses_zoom = rule.zoom is not None and (rule.shrink is None or not explicit)
    for name, value, used in (
        ("shrink_factor", rule.shrink, uses_shrink),
        ("zoom_factor", rule.zoom, uses_zoom),
    ):
        if used and value is not None and value < 1:
            raise ctx.error(f"{name} must be positive, got {value}")
    h_eff = shape[2] + rule.pad_beg + rule.pad_end
    w_eff = shape[3] + rule.pad_beg + rule.pad_end
    if h_eff <= 0 or w_eff <= 0:
        raise ctx.error(f"cropping leaves no input ({h_eff} x {w_eff})")
    out = rule.output_size(h_eff, w_eff)
    if out[0] <= 0 or out[1] <= 0:
        raise ctx.error(f"output size {out} must be positive")
    return CaffeInterp(rule)


# --------------------------------------------------------------------------- BN


class CaffeBN(nn.Module):
    """PSPNet's BN (see the module doc)."""

    def __init__(
        self,
        slope: torch.Tensor,
        bias: torch.Tensor,
        mean: torch.Tensor,
        var: torch.Tensor,
        momentum: float,
        eps: float,
        frozen: bool,
    ) -> None:
        super().__init__()
        learn = not frozen
        self.blobs = nn.ParameterList(
            [
                nn.Parameter(slope, requires_grad=learn),
                nn.Parameter(bias, requires_grad=learn),
                nn.Parameter(mean, requires_grad=False),
                nn.Parameter(var, requires_grad=False),
            ]
        )
        self.momentum = momentum
        self.eps = eps
        self.frozen = frozen

    @staticmethod
    def _mean(t: torch.Tensor) -> torch.Tensor:
        # Mean over the axes after channels (H x W; none for a 2-D bottom), then over N
        # (the fork's two gemv calls).
        spatial = tuple(range(2, t.dim()))
        per_item = t.mean(dim=spatial) if spatial else t
        return per_item.mean(dim=0).reshape((1, -1) + (1,) * len(spatial))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        slope, bias, mean, var = self.blobs
        shape = (1, x.shape[1]) + (1,) * (x.dim() - 2)
        if self.frozen or not self.training:
            centred = x - mean.reshape(shape)
            stat_var = var.reshape(shape)
        else:
            batch_mean = self._mean(x)
            centred = x - batch_mean
            stat_var = self._mean(centred * centred)
            with torch.no_grad():  # moving averages: (1 - m) * batch + m * stored
                keep = float(f32(1.0) - f32(self.momentum))
                mean.copy_(
                    (keep * batch_mean + self.momentum * mean.reshape(shape)).reshape(mean.shape)
                )
                var.copy_((keep * stat_var + self.momentum * var.reshape(shape)).reshape(var.shape))
        inv_std = torch.pow(stat_var + self.eps, -0.5)
        return centred * inv_std * slope.reshape(shape) + bias.reshape(shape)

    def fits_saved(self, j: int, saved: tuple[int, ...]) -> bool:
        """Whether a caffemodel blob of shape ``saved`` holds blob ``j`` though its shape
        differs: the forks that shape every BN blob (1, C) (yjxiong/caffe, Cysu/caffe)."""
        return saved == (1, int(self.blobs[j].shape[1]))

    def extra_repr(self) -> str:
        return f"momentum={self.momentum}, eps={self.eps}, frozen={self.frozen}"


class SegNetBN(nn.Module):
    """SegNet's BN (see the module doc)."""

    def __init__(self, scale: torch.Tensor, shift: torch.Tensor, inference: bool,
                 n_tops: int) -> None:
        super().__init__()
        self.blobs = nn.ParameterList([nn.Parameter(scale), nn.Parameter(shift)])
        self.inference = inference
        self.n_tops = n_tops

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
        scale, shift = (b.reshape(1, -1, 1, 1) for b in self.blobs)
        if self.inference:
            return scale * x + shift
        mean = x.mean(dim=(2, 3)).mean(dim=0)  # 1/(HW) then 1/N, as the fork's gemv calls
        sq = (x * x).mean(dim=(2, 3)).mean(dim=0)
        var = sq - mean * mean
        y = (x - mean.reshape(1, -1, 1, 1)) / torch.sqrt(var + f32(1e-9)).reshape(1, -1, 1, 1)
        y = y * scale + shift
        if self.n_tops == 1:
            return y
        stats = (mean.reshape(1, -1, 1, 1), var.reshape(1, -1, 1, 1))
        return (y, *stats[: self.n_tops - 1])

    def extra_repr(self) -> str:
        return f"bn_mode={'INFERENCE' if self.inference else 'LEARN'}"


_SEGNET_BN_FIELDS = ("bn_param.bn_mode", "bn_param.scale_filler", "bn_param.shift_filler")


def _filler(value: Any, default_type: str) -> Any:
    from caffe2torch.proto import caffe_pb2

    msg = caffe_pb2.FillerParameter(type=default_type)
    if isinstance(value, dict):
        for key, v in value.items():
            if key in msg.DESCRIPTOR.fields_by_name and not isinstance(v, (dict, list)):
                setattr(msg, key, v)
    return msg


def _build_segnet_bn(ctx: BuildContext, shape: tuple[int, ...]) -> nn.Module:
    mode = ctx.extra_field("bn_param.bn_mode", "LEARN")
    scale_f = _filler(ctx.extra_field("bn_param.scale_filler"), "constant")
    shift_f = _filler(ctx.extra_field("bn_param.shift_filler"), "constant")
    if mode not in ("LEARN", "INFERENCE", 0, 1):
        raise ctx.error(f"unknown bn_mode {mode!r}", hint="SegNet's BN has LEARN and INFERENCE")
    gen = ctx.options.get("generator")
    blob_shape = (1, shape[1], 1, 1)
    return SegNetBN(make_filled(blob_shape, scale_f, gen), make_filled(blob_shape, shift_f, gen),
                    mode in ("INFERENCE", 1), ctx.num_tops)


@register_layer("BN", param="bn_param", blobs=("slope", "bias", "mean", "variance"),
                tops=(1, 3))
def build_bn(ctx: BuildContext) -> nn.Module:
    p = ctx.param
    shape = ctx.bottom_shapes[0]
    segnet = [e for e in ctx.extra if e.dotted in _SEGNET_BN_FIELDS]
    if segnet or ctx.num_tops > 1:
        if len(shape) != 4:
            raise ctx.error(f"needs a 4-D (num, channels, height, width) bottom, got {shape}")
        return _build_segnet_bn(ctx, shape)
    if not 2 <= len(shape) <= 4:
        # The fork reads num, channels, height and width through Blob's legacy accessors,
        # which count a missing trailing axis as 1 and refuse more than 4 axes.
        raise ctx.error(f"needs a bottom of 2 to 4 axes (num, channels[, height[, width]]), "
                        f"got {shape}")
    blob_shape = (1, shape[1]) + (1,) * (len(shape) - 2)
    gen = ctx.options.get("generator")
    slope = make_filled(blob_shape, p.slope_filler, gen)
    bias = make_filled(blob_shape, p.bias_filler, gen)
    mean = torch.zeros(blob_shape)
    var = torch.full(blob_shape, 1.0 if p.frozen else 0.0)
    return CaffeBN(
        slope, bias, mean, var, float(f32(p.momentum)), float(f32(p.eps)), bool(p.frozen)
    )


# --------------------------------------------------------------------------- Upsample


@portable
def max_unpool(x: torch.Tensor, mask: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """SegNet's Upsample (max-unpooling): each value of x goes to the position int(mask)
    names in a ``size`` plane, zeros elsewhere; of values sent to one position the last
    wins, as the fork writes them in order. The mask indices must lie in the plane."""
    n, c = x.shape[0], x.shape[1]
    plane = size[0] * size[1]
    idx = mask.detach().to(torch.int64).reshape(n, c, -1)
    flat = x.reshape(n, c, -1)
    order = torch.arange(flat.shape[2], device=x.device).expand_as(idx)
    winner = torch.full((n, c, plane), -1, dtype=torch.int64, device=x.device)
    winner.scatter_reduce_(2, idx, order, reduce="amax")
    values = flat.gather(2, winner.clamp(min=0))
    out = torch.where(winner >= 0, values, torch.zeros_like(values))
    return out.reshape(n, c, *size)


class _UnpoolFunction(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: Any, x: torch.Tensor, mask: torch.Tensor, size: tuple[int, int]
    ) -> torch.Tensor:
        n, c = x.shape[:2]
        plane = size[0] * size[1]
        idx = mask.detach().to(torch.int64).reshape(n, c, -1)  # static_cast<int>
        bad = idx[(idx < 0) | (idx >= plane)]
        if bad.numel():
            raise BuildError(
                f"upsample top index {int(bad[0])} out of range for a {size[0]} x {size[1]} top",
                hint="check scale settings match input pooling layer's downsample setup",
            )
        out = max_unpool(x, idx, size)
        ctx.save_for_backward(idx)
        ctx.shape = x.shape
        return out

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        (idx,) = ctx.saved_tensors
        n, c = ctx.shape[:2]
        diff = grad.reshape(n, c, -1).gather(2, idx)
        return diff.reshape(ctx.shape), None, None


class CaffeUpsample(nn.Module):
    def __init__(self, size: tuple[int, int] | None, scale: tuple[int, int],
                 pad_out: tuple[bool, bool]) -> None:
        super().__init__()
        self.size = size
        self.scale = scale
        self.pad_out = pad_out

    def out_size(self, h: int, w: int) -> tuple[int, int]:
        if self.size is not None:
            return self.size
        return (h * self.scale[0] - int(self.pad_out[0]), w * self.scale[1] - int(self.pad_out[1]))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        size = self.out_size(int(x.shape[2]), int(x.shape[3]))
        if x.device.type == "meta":
            return x.new_empty((x.shape[0], x.shape[1], *size))
        return _UnpoolFunction.apply(x, mask, size)

    def extra_repr(self) -> str:
        if self.size is not None:
            return f"size={self.size}"
        return f"scale={self.scale}, pad_out={self.pad_out}"


@register_layer("Upsample", param="upsample_param", bottoms=2)
def build_upsample(ctx: BuildContext) -> nn.Module:
    p = ctx.param
    has = p.HasField
    if not ((has("upsample_h") and has("upsample_w"))
            or (not has("scale") and has("scale_h") and has("scale_w"))
            or (not has("scale_h") and not has("scale_w"))):
        raise ctx.error("upsample_h & upsample_w are required, else (deprecated) scale OR "
                        "scale_h & scale_w")
    x, mask = ctx.bottom_shapes
    if len(x) != 4 or len(mask) != 4:
        raise ctx.error(f"input and mask must have 4 axes, got {list(x)} and {list(mask)}")
    if tuple(x) != tuple(mask):
        raise ctx.error(f"input {list(x)} and mask {list(mask)} must have the same shape",
                        hint="bottom 1 is the second (mask) top of a MAX Pooling layer")
    if has("upsample_h") and has("upsample_w"):
        if p.upsample_h <= 1 or p.upsample_w <= 1:
            raise ctx.error("upsample_h and upsample_w must be > 1")
        return CaffeUpsample((int(p.upsample_h), int(p.upsample_w)), (1, 1), (False, False))
    scale = (int(p.scale_h), int(p.scale_w)) if has("scale_h") else (int(p.scale), int(p.scale))
    if min(scale) <= 1:
        raise ctx.error(f"the scale must be > 1, got {scale}")
    for pad, s, axis in ((p.pad_out_h, scale[0], "h"), (p.pad_out_w, scale[1], "w")):
        if pad and s != 2:
            raise ctx.error(f"pad_out_{axis} requires scale_{axis} == 2")
    return CaffeUpsample(None, scale, (bool(p.pad_out_h), bool(p.pad_out_w)))


# --------------------------------------------------------------------------- DenseImageData


@register_layer("DenseImageData", bottoms=0, tops=2, data=True)
def build_dense_image_data(ctx: BuildContext) -> nn.Module:
    from caffe2torch.layers.bvlc.inputs import _data_module, _first_image_size

    p = dict(ctx.extra_field("dense_image_data_param", {}) or {})
    batch = int(p.get("batch_size", 0) or 0)
    if batch <= 0:
        raise ctx.error("dense_image_data_param.batch_size must be positive")
    channels = 3 if p.get("is_color", True) else 1
    crop = int(ctx.layer.transform_param.crop_size) if ctx.layer.HasField(
        "transform_param") else 0
    ch, cw = int(p.get("crop_height", 0)), int(p.get("crop_width", 0))
    nh, nw = int(p.get("new_height", 0)), int(p.get("new_width", 0))
    if (ch > 0) != (cw > 0) or (nh > 0) != (nw > 0):
        raise ctx.error("crop_height/crop_width and new_height/new_width must each be set "
                        "together (or neither)")
    hw: tuple[int, int] | None
    if crop > 0:
        hw = (crop, crop)
    elif ch > 0:
        hw = (ch, cw)
    elif nh > 0:
        hw = (nh, nw)
    else:
        hw = _first_image_size(_ListSource(str(p.get("source", "")),
                                           str(p.get("root_folder", "")), channels == 3),
                               first_token=True)
    if hw is None:
        return _data_module(ctx, None, "without a crop or resize the size comes from the "
                            f"first image listed in {p.get('source', '')!r}, which cannot be "
                            "read here")
    return _data_module(ctx, [(batch, channels, *hw), (batch, 1, *hw)])


@dataclass(frozen=True)
class _ListSource:
    source: str
    root_folder: str
    is_color: bool


# ----------------------------------------------------------------------------- standalone source
# convert's emitters for the module classes above (caffe2torch.layers.emit)


@emitter(CaffeUpsample)
def _emit_upsample(e: Emit) -> list[str]:
    size = tuple(e.top_shapes[0][2:4])
    return e.assign(e.call("max_unpool", f"{e.bottoms[0]}, {e.bottoms[1]}, {size}"))


@emitter(CaffeInterp)
def _emit_interp(e: Emit) -> list[str]:
    r = e.module.rule
    size = tuple(e.top_shapes[0][2:4])
    return e.assign(e.call("caffe_interp", f"{e.bottoms[0]}, {size}, {r.pad_beg}, {r.pad_end}"))


@emitter(CaffeBN)
def _emit_bn(e: Emit) -> list[str]:
    """PSPNet's BN with its stored statistics: (x - mean) (var + eps)^-1/2 slope + bias."""
    m = e.module
    if m.training and not m.frozen:
        raise e.unsupported("BN with batch statistics (TRAIN phase, frozen: false)")
    slope, bias, mean, var = (e.param(i, "") for i in range(4))
    x = e.bottoms[0]
    return e.assign(
        f"({x} - {mean}) * torch.pow({var} + {num(m.eps)}, -0.5) * {slope} + {bias}"
    )
