"""Standalone source for the fork layers: SSD (Normalize, Permute, PriorBox), segmentation
(Interp, BN, SegNet's Upsample), mobile nets (ShuffleChannel, ReLU6, Axpy; depthwise
convolutions are plain convolutions), detection (ROIPooling, PSROIPooling, Reorg) and face
recognition (feature normalisation, margin and cosine layers, NormFace's InnerDistance).
Metric-learning losses are in pysource_metric.

DetectionOutput has no source: its non-maximum suppression keeps a value-dependent number
of boxes, which the caffe2torch layer computes with numpy; run it outside the file.
"""

from __future__ import annotations

import torch

from caffe2torch.export.pysource import Emit, emitter, num
from caffe2torch.export.snippets import add_snippets
from caffe2torch.layers.forks import detection as forks_detection
from caffe2torch.layers.forks import face as forks_face
from caffe2torch.layers.forks import mobile as forks_mobile
from caffe2torch.layers.forks import normface as forks_normface
from caffe2torch.layers.forks import segmentation as forks_segmentation
from caffe2torch.layers.forks import ssd as forks_ssd

SSD_NORMALIZE = '''
class SSDNormalize(nn.Module):
    """SSD's Normalize: x / sqrt(sum x^2 + eps) over C x H x W of each item (across_spatial;
    the fork multiplies by the reciprocal rounded to float) or over C at each position, then
    times the learned scale (one value or one per channel)."""

    def __init__(self, across_spatial: bool, eps: float) -> None:
        super().__init__()
        self.across_spatial, self.eps = across_spatial, eps

    def forward(self, x: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        n, c = x.shape[0], x.shape[1]
        flat = x.reshape(n, c, -1)
        if self.across_spatial:
            norm = torch.sqrt((flat * flat).sum(dim=(1, 2)) + self.eps)
            normed = flat * (1.0 / norm.double()).to(flat.dtype)[:, None, None]
        else:
            normed = flat / torch.sqrt((flat * flat).sum(dim=1, keepdim=True) + self.eps)
        s = scale.reshape(1, 1, 1) if scale.dim() == 0 else scale.reshape(1, c, 1)
        return (normed * s).reshape(x.shape)
'''

INTERP = '''
class CaffeInterp(nn.Module):
    """The segmentation forks' Interp: crop by -pad_beg / -pad_end, then bilinear resize to
    `size` with align-corners sampling computed in float32 as caffe_cpu_interp2 does."""

    def __init__(self, size, pad_beg: int, pad_end: int) -> None:
        super().__init__()
        self.size, self.pad_beg, self.pad_end = tuple(size), pad_beg, pad_end

    @staticmethod
    def _taps(size_in: int, size_out: int):
        """Per output index: source index, its neighbour, the neighbour's weight."""
        ratio = torch.tensor(0.0)
        if size_out > 1:
            ratio = torch.tensor(float(size_in - 1)) / torch.tensor(float(size_out - 1))
        pos = ratio * torch.arange(size_out, dtype=torch.float32)
        index = pos.to(torch.int64)
        step = (index < size_in - 1).to(torch.int64)
        return index, index + step, pos - index.to(torch.float32)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.shape[-2] + self.pad_beg + self.pad_end
        w = x.shape[-1] + self.pad_beg + self.pad_end
        x = x[..., -self.pad_beg:h - self.pad_beg, -self.pad_beg:w - self.pad_beg]
        if (h, w) == self.size:
            return x.clone()
        i0, i1, lh = self._taps(h, self.size[0])
        j0, j1, lw = self._taps(w, self.size[1])
        lh = lh.to(x.dtype)[:, None]
        lw = lw.to(x.dtype)
        top, bottom = x.index_select(-2, i0), x.index_select(-2, i1)
        upper = (1.0 - lw) * top.index_select(-1, j0) + lw * top.index_select(-1, j1)
        lower = (1.0 - lw) * bottom.index_select(-1, j0) + lw * bottom.index_select(-1, j1)
        return (1.0 - lh) * upper + lh * lower
'''

ROI_HELPERS = '''
def round_half_away(x: torch.Tensor) -> torch.Tensor:
    """C's round(): halves away from zero."""
    x = x.double()
    return torch.sign(x) * torch.floor(torch.abs(x) + 0.5)


def roi_bins(start: int, extent: int, n: int, limit: int):
    """[lo, hi) of each of `n` bins over `extent` cells from `start`, clipped to the map."""
    size = torch.tensor(float(extent)) / torch.tensor(float(n))
    idx = torch.arange(n, dtype=torch.float32)
    lo = torch.floor(idx * size).to(torch.int64) + start
    hi = torch.ceil((idx + 1) * size).to(torch.int64) + start
    return lo.clamp(0, limit).tolist(), hi.clamp(0, limit).tolist()
'''

ROI_POOLING = '''
class CaffeROIPooling(nn.Module):
    """Fast R-CNN's ROIPooling: each ROI [batch, x1, y1, x2, y2] (image coordinates, times
    spatial_scale, rounded) split into pooled_h x pooled_w bins; the max of each bin, 0 for
    an empty bin."""

    def __init__(self, pooled_h: int, pooled_w: int, spatial_scale: float) -> None:
        super().__init__()
        self.pooled, self.spatial_scale = (pooled_h, pooled_w), spatial_scale

    def forward(self, x: torch.Tensor, rois: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[2], x.shape[3]
        scale = torch.tensor(self.spatial_scale, dtype=torch.float32)
        out = x.new_zeros((rois.shape[0], x.shape[1], *self.pooled))
        for r, roi in enumerate(rois.reshape(rois.shape[0], -1)[:, :5].float()):
            x1, y1, x2, y2 = (int(v) for v in round_half_away(roi[1:5] * scale))
            hs, he = roi_bins(y1, max(y2 - y1 + 1, 1), self.pooled[0], height)
            ws, we = roi_bins(x1, max(x2 - x1 + 1, 1), self.pooled[1], width)
            feature = x[int(roi[0])]
            for i in range(self.pooled[0]):
                for j in range(self.pooled[1]):
                    if he[i] > hs[i] and we[j] > ws[j]:
                        cell = feature[:, hs[i]:he[i], ws[j]:we[j]]
                        out[r, :, i, j] = cell.amax(dim=(1, 2)).clamp_min(-3.4028234663852886e38)
        return out
'''

PSROI_POOLING = '''
class CaffePSROIPooling(nn.Module):
    """R-FCN's PSROIPooling: bin (i, j) of output channel d averages input channel
    (d * group + i) * group + j over the bin; 0 for an empty bin."""

    def __init__(self, spatial_scale: float, output_dim: int, group: int) -> None:
        super().__init__()
        self.spatial_scale, self.output_dim, self.group = spatial_scale, output_dim, group

    def _bins(self, start, end, limit: int):
        extent = torch.clamp(end - start, min=0.1)  # the fork's minimum ROI size
        size = extent / torch.tensor(float(self.group))
        idx = torch.arange(self.group, dtype=torch.float32)
        lo = torch.floor(idx * size + start).to(torch.int64).clamp(0, limit)
        hi = torch.ceil((idx + 1) * size + start).to(torch.int64).clamp(0, limit)
        return lo.tolist(), hi.tolist()

    def forward(self, x: torch.Tensor, rois: torch.Tensor) -> torch.Tensor:
        k, size = self.group, (x.shape[2], x.shape[3])
        scale = torch.tensor(self.spatial_scale, dtype=torch.float32)
        out = x.new_zeros((rois.shape[0], self.output_dim, k, k))
        for r, roi in enumerate(rois.reshape(rois.shape[0], -1)[:, :5].float()):
            corners = round_half_away(roi[1:5]).float()
            start = corners[:2] * scale
            end = (corners[2:].double() + 1.0).float() * scale
            hs, he = self._bins(start[1], end[1], size[0])
            ws, we = self._bins(start[0], end[0], size[1])
            feature = x[int(roi[0])].reshape(self.output_dim, k, k, *size)
            for i in range(k):
                for j in range(k):
                    area = (he[i] - hs[i]) * (we[j] - ws[j])
                    if area > 0:
                        cell = feature[:, i, j, hs[i]:he[i], ws[j]:we[j]]
                        out[r, :, i, j] = cell.sum(dim=(1, 2)) / area
        return out
'''

MARGIN_IP = '''
class MarginInnerProduct(nn.Module):
    """SphereFace's A-Softmax logits: x W^T with rows of W normalised; the label's logit
    becomes (|x| psi(theta) + lambda x.w) / (1 + lambda), psi(theta) = (-1)^k cos(m theta) - 2k,
    lambda = max(lambda_min, base (1 + gamma it)^-power), `it` counting forwards."""

    def __init__(self, m: int, base: float, gamma: float, power: float, lambda_min: float,
                 iteration: float) -> None:
        super().__init__()
        self.m, self.base, self.gamma, self.power = m, base, gamma, power
        self.lambda_min, self.iteration = lambda_min, iteration

    @staticmethod
    def _f32(value: float) -> float:
        return torch.tensor(value, dtype=torch.float32).item()

    def _psi(self, cos: torch.Tensor) -> torch.Tensor:
        s0, c2 = torch.sign(cos), cos * cos
        if self.m == 2:
            return 2 * s0 * c2 - 1
        if self.m == 3:
            s1 = torch.sign(torch.abs(cos) - 0.5)
            return s1 * (4 * cos ** 3 - 3 * cos) + s0 * (1 + s1) - 2
        s3 = s0 * torch.sign(2 * c2 - 1)
        return s3 * (8 * cos ** 4 - 8 * c2 + 1) + 2 * s0 + s3 - 3

    def forward(self, x: torch.Tensor, label: torch.Tensor,
                weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self.iteration = self._f32(self.iteration + 1.0)
        decay = self._f32(1.0 + self._f32(self.gamma * self.iteration))
        lam = max(self._f32(self.base * math.pow(decay, -self.power)), self.lambda_min)
        w = weight / torch.sqrt((weight * weight).sum(dim=1, keepdim=True))
        flat = x.reshape(x.shape[0], -1)
        top = flat @ w.t()
        if self.m > 1:
            rows = torch.arange(flat.shape[0])
            labels = label.reshape(flat.shape[0], -1)[:, 0].to(torch.int64)
            norm = torch.sqrt((flat * flat).sum(dim=1))
            target = top[rows, labels]
            top = top.clone()
            top[rows, labels] = (norm * self._psi(target / norm) + lam * target) / (1 + lam)
        return top, torch.tensor([lam], dtype=x.dtype)
'''

UPSAMPLE = '''
class SegNetUpsample(nn.Module):
    """SegNet's Upsample (max-unpooling): each value of x goes to the position its MAX
    Pooling mask names in a `size` plane, zeros elsewhere; of values sent to one position
    the last wins, as the fork writes them in order."""

    def __init__(self, size) -> None:
        super().__init__()
        self.size = tuple(size)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        n, c = x.shape[0], x.shape[1]
        plane = self.size[0] * self.size[1]
        idx = mask.to(torch.int64).reshape(n, c, -1)
        if bool(((idx < 0) | (idx >= plane)).any()):
            raise ValueError(f"upsample mask index out of range for a {self.size} top")
        flat = x.reshape(n, c, -1)
        order = torch.arange(flat.shape[2], device=x.device).expand_as(idx)
        winner = torch.full((n, c, plane), -1, dtype=torch.int64, device=x.device)
        winner.scatter_reduce_(2, idx, order, reduce="amax")
        values = flat.gather(2, winner.clamp(min=0))
        out = torch.where(winner >= 0, values, torch.zeros_like(values))
        return out.reshape(n, c, *self.size)
'''

INNER_DISTANCE = '''
def inner_distance(x: torch.Tensor, centres: torch.Tensor, l1: bool,
                   normalize: bool) -> torch.Tensor:
    """NormFace's InnerDistance: (M, N) sum_k (x_mk - w_nk)^2 (or |x_mk - w_nk|) to every
    centre row; `normalize` first scales each centre to unit length (+1e-6 under the root),
    as the fork does to its blob at every forward."""
    if normalize:
        centres = centres / torch.sqrt((centres * centres).sum(dim=1, keepdim=True) + 1e-6)
    diff = x.unsqueeze(1) - centres.unsqueeze(0)
    return diff.abs().sum(dim=2) if l1 else (diff * diff).sum(dim=2)
'''

add_snippets(
    {"SSDNormalize": SSD_NORMALIZE, "CaffeInterp": INTERP, "roi_helpers": ROI_HELPERS,
     "CaffeROIPooling": ROI_POOLING, "CaffePSROIPooling": PSROI_POOLING,
     "MarginInnerProduct": MARGIN_IP, "SegNetUpsample": UPSAMPLE,
     "inner_distance": INNER_DISTANCE},
    {"CaffeROIPooling": ("roi_helpers",), "CaffePSROIPooling": ("roi_helpers",)},
)


# ----------------------------------------------------------------------------- SSD


@emitter(forks_ssd.CaffeNormalize)
def _ssd_normalize(e: Emit) -> list[str]:
    m = e.module
    module = e.submodule("SSDNormalize", f"{m.across_spatial}, {num(m.eps)}")
    return e.assign(f"{module}({e.bottoms[0]}, {e.param(0, 'scale')})")


@emitter(forks_ssd.CaffePermute)
def _permute(e: Emit) -> list[str]:
    order = tuple(e.module.order)
    if order == tuple(range(len(e.bottom_shapes[0]))):
        return e.assign(e.bottoms[0])
    return e.assign(f"{e.bottoms[0]}.permute{order}.contiguous()")


@emitter(forks_ssd.CaffePriorBox)
def _prior_box(e: Emit) -> list[str]:
    """The boxes depend only on the (fixed) feature map and image sizes: computed once
    here and kept as a buffer."""
    shapes = [torch.zeros(s) for s in e.bottom_shapes]
    with torch.no_grad():
        boxes = e.module(*shapes)
    return [f"# {e.layer.name}: SSD default boxes of a {e.bottom_shapes[0][2]}x"
            f"{e.bottom_shapes[0][3]} map (fixed by the input size)",
            f"{e.tops[0]} = {e.buffer(boxes, 'boxes')}"]


@emitter(forks_ssd.CaffeDetectionOutput)
def _detection_output(e: Emit) -> list[str]:
    raise e.unsupported(
        "DetectionOutput (its non-maximum suppression keeps a value-dependent number of "
        "boxes)"
    )


# ----------------------------------------------------------------------------- segmentation


@emitter(forks_segmentation.CaffeUpsample)
def _upsample(e: Emit) -> list[str]:
    module = e.submodule("SegNetUpsample", str(tuple(e.top_shapes[0][2:4])))
    return e.assign(f"{module}({e.bottoms[0]}, {e.bottoms[1]})")


@emitter(forks_normface.CaffeInnerDistance)
def _inner_distance(e: Emit) -> list[str]:
    m = e.module
    if m.center_only:
        raise e.unsupported("InnerDistance with update_center_only (a training rule)")
    e.use("inner_distance")
    x = e.bottoms[0]
    flat = f"{x}.flatten({m.axis}).flatten(0, {m.axis - 1})"  # (items before axis, features)
    if len(m.blobs):
        centres = f"{e.param(0, 'centres')}.reshape({m.num_output}, -1)"
    else:
        centres = f"{e.bottoms[1]}.reshape({e.bottoms[1]}.shape[0], -1)"
    call = f"inner_distance({flat}, {centres}, {m.l1}, {m.normalize and len(m.blobs) > 0})"
    if m.axis == 1:
        return e.assign(call)
    return e.assign(f"{call}.reshape(*{x}.shape[:{m.axis}], -1)")


@emitter(forks_segmentation.CaffeInterp)
def _interp(e: Emit) -> list[str]:
    r = e.module.rule
    size = tuple(e.top_shapes[0][2:4])
    module = e.submodule("CaffeInterp", f"{size}, {r.pad_beg}, {r.pad_end}")
    return e.assign(f"{module}({e.bottoms[0]})")


@emitter(forks_segmentation.CaffeBN)
def _bn(e: Emit) -> list[str]:
    """PSPNet's BN with its stored statistics: (x - mean) (var + eps)^-1/2 slope + bias."""
    m = e.module
    if m.training and not m.frozen:
        raise e.unsupported("BN with batch statistics (TRAIN phase, frozen: false)")
    slope, bias, mean, var = (e.param(i, "") for i in range(4))
    x = e.bottoms[0]
    return e.assign(
        f"({x} - {mean}) * torch.pow({var} + {num(m.eps)}, -0.5) * {slope} + {bias}"
    )


# ----------------------------------------------------------------------------- mobile


@emitter(forks_mobile.CaffeShuffleChannel)
def _shuffle(e: Emit) -> list[str]:
    shape = e.bottom_shapes[0]
    g = e.module.group
    x = e.bottoms[0]
    rest = ", ".join(map(str, shape[2:]))
    grouped = f"{x}.reshape({x}.shape[0], {g}, {shape[1] // g}{', ' + rest if rest else ''})"
    return e.assign(f"{grouped}.transpose(1, 2).reshape({x}.shape)")


@emitter(forks_mobile.CaffeReLU6)
def _relu6(e: Emit) -> list[str]:
    return e.assign(f"torch.clamp({e.bottoms[0]}, 0.0, 6.0)")


@emitter(forks_mobile.CaffeAxpy)
def _axpy(e: Emit) -> list[str]:
    a, x, y = e.bottoms
    ones = ", 1" * (len(e.bottom_shapes[1]) - 2)
    return e.assign(f"{y} + {a}.reshape({a}.shape[0], {a}.shape[1]{ones}) * {x}")


# ----------------------------------------------------------------------------- detection


@emitter(forks_detection.CaffeReorg)
def _reorg(e: Emit) -> list[str]:
    """darknet's reorg: a fixed reshape / permute / reshape of the blob's memory."""
    _, c, h, w = e.bottom_shapes[0]
    s = e.module.stride
    x = e.bottoms[0]
    if not e.module.reverse:
        return e.assign(f"{x}.reshape({x}.shape[0], {c // (s * s)}, {h}, {s}, {w}, {s})"
                        f".permute(0, 3, 5, 1, 2, 4).reshape({x}.shape[0], {c * s * s}, "
                        f"{h // s}, {w // s})")
    return e.assign(f"{x}.reshape({x}.shape[0], {s}, {s}, {c // (s * s)}, {h}, {w})"
                    f".permute(0, 3, 4, 1, 5, 2).reshape({x}.shape[0], {c // (s * s)}, "
                    f"{h * s}, {w * s})")


@emitter(forks_detection.CaffeROIPooling)
def _roi_pooling(e: Emit) -> list[str]:
    m = e.module
    module = e.submodule("CaffeROIPooling", f"{m.pooled[0]}, {m.pooled[1]}, "
                         f"{num(m.spatial_scale)}")
    return e.assign(f"{module}({', '.join(e.bottoms)})")


@emitter(forks_detection.CaffePSROIPooling)
def _psroi_pooling(e: Emit) -> list[str]:
    m = e.module
    module = e.submodule("CaffePSROIPooling", f"{num(m.spatial_scale)}, {m.output_dim}, "
                         f"{m.group_size}")
    return e.assign(f"{module}({', '.join(e.bottoms)})")


# ----------------------------------------------------------------------------- face


@emitter(forks_face.CaffeFeatureNormalize)
def _feature_normalize(e: Emit) -> list[str]:
    """NormFace's Normalize: x / ||x|| over channels (L2: sqrt(sum x^2 + 1e-6); L1:
    sum |x| + 1e-6), 4-D top; optional second top: the norm."""
    m = e.module
    x, top = e.bottoms[0], e.tops[0]
    shape = ", ".join(map(str, (*e.bottom_shapes[0], 1, 1, 1)[1:4]))
    lines = [f"{top} = {x}.reshape({x}.shape[0], {shape})"]
    if m.kind == "L2":
        norm = f"torch.sqrt(({top} * {top}).sum(dim=1, keepdim=True) + 1e-6)"
    else:
        norm = f"torch.abs({top}).sum(dim=1, keepdim=True) + 1e-6"
    if len(e.tops) == 1:
        return [*lines, f"{top} = {top} / ({norm})"]
    return [*lines, f"{e.tops[1]} = {norm}", f"{top} = {top} / {e.tops[1]}"]


@emitter(forks_face.CaffeNormL2)
def _norm_l2(e: Emit) -> list[str]:
    x, top = e.bottoms[0], e.tops[0]
    shape = ", ".join(map(str, (*e.bottom_shapes[0], 1, 1, 1)[1:4]))
    return [
        f"{top} = {x}.reshape({x}.shape[0], -1)",
        f"{top} = {top} / torch.sqrt(({top} * {top}).sum(dim=1, keepdim=True) + 1e-7)",
        f"{top} = {top}.reshape({x}.shape[0], {shape})",
    ]


@emitter(forks_face.CaffeFlip)
def _flip(e: Emit) -> list[str]:
    dims = e.module.dims
    x = e.bottoms[0]
    return e.assign(f"torch.flip({x}, {list(dims)})" if dims else f"{x}.clone()")


@emitter(forks_face.NormalizedInnerProduct)
def _normalized_ip(e: Emit) -> list[str]:
    """happynear's InnerProduct { normalize: true }: unit weight rows, then x W^T + b."""
    m = e.module
    x = e.bottoms[0]
    if len(e.bottom_shapes[0]) != m.axis + 1:
        x = f"{x}.flatten({m.axis})"
    w = e.param(0, "weight")
    b = e.param(1, "bias") if len(m.blobs) > 1 else "None"
    unit = f"{w} / torch.sqrt(({w} * {w}).sum(dim=1, keepdim=True) + 1e-12)"
    return e.assign(f"F.linear({x}, {unit}, {b})")


@emitter(forks_face.BottomWeightInnerProduct)
def _bottom_weight_ip(e: Emit) -> list[str]:
    m = e.module
    x, w = e.bottoms
    w = f"{w}.reshape({w}.shape[0], -1)" + (".t()" if m.transpose else "")
    b = e.param(0, "bias") if len(m.blobs) else "None"
    return e.assign(f"F.linear({x}.flatten({m.axis}), {w}, {b})")


@emitter(forks_face.CaffeMarginInnerProduct)
def _margin_ip(e: Emit) -> list[str]:
    m = e.module
    if m.axis != 1:
        raise e.unsupported(f"MarginInnerProduct over axis {m.axis}")
    margin = {forks_face.SINGLE: 1, forks_face.DOUBLE: 2, forks_face.TRIPLE: 3,
              forks_face.QUADRUPLE: 4}[m.kind]
    args = (f"{margin}, {num(m.base)}, {num(m.gamma)}, {num(m.power)}, {num(m.lambda_min)}, "
            f"{num(m.iteration)}")
    module = e.submodule("MarginInnerProduct", args)
    return e.assign_leading(f"{module}({', '.join(e.bottoms)}, {e.param(0, 'weight')})")


@emitter(forks_face.CaffeCosinAddm)
def _cosin_add_m(e: Emit) -> list[str]:
    m = e.module
    if not m.training and not m.transform_test:
        return [f"# {e.layer.name}: CosinAddm leaves the logits alone at test time",
                *e.assign(e.bottoms[0])]
    raise e.unsupported("CosinAddm applying its margin (TRAIN phase or transform_test)")


@emitter(forks_face.CaffeLabelSpecificAdd)
def _label_specific_add(e: Emit) -> list[str]:
    if e.module.training:
        raise e.unsupported("LabelSpecificAdd in the TRAIN phase")
    return [f"# {e.layer.name}: LabelSpecificAdd is the identity at test time",
            *e.assign(e.bottoms[0])]


@emitter(forks_face.CaffeLabelSpecificRescale)
def _label_specific_rescale(e: Emit) -> list[str]:
    m = e.module
    if m.training or m.rescale_test:
        raise e.unsupported("LabelSpecificRescale rescaling its logits (TRAIN or rescale_test)")
    lines = [f"# {e.layer.name}: LabelSpecificRescale is the identity at test time",
             *e.assign(e.bottoms[0])]
    if len(e.tops) == 2:
        lines.append(f"{e.tops[1]} = torch.tensor([{num(m.positive_weight)}])")
    return lines
