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
from caffe2torch.layers.forks import detection as forks_detection
from caffe2torch.layers.forks import face as forks_face
from caffe2torch.layers.forks import mobile as forks_mobile
from caffe2torch.layers.forks import normface as forks_normface
from caffe2torch.layers.forks import segmentation as forks_segmentation
from caffe2torch.layers.forks import ssd as forks_ssd

# ----------------------------------------------------------------------------- SSD


@emitter(forks_ssd.CaffeNormalize)
def _ssd_normalize(e: Emit) -> list[str]:
    m = e.module
    x = e.bottoms[0]
    c = e.bottom_shapes[0][1]
    normed = e.call("ssd_normalize", f"{x}.reshape({x}.shape[0], {c}, -1), "
                    f"{m.across_spatial}, {num(m.eps)}")
    # the learned scale: one value or one per channel
    shape = "1, 1, 1" if m.blobs[0].dim() == 0 else f"1, {c}, 1"
    return e.assign(f"({normed} * {e.param(0, 'scale')}.reshape({shape})).reshape({x}.shape)")


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
    size = tuple(e.top_shapes[0][2:4])
    return e.assign(e.call("max_unpool", f"{e.bottoms[0]}, {e.bottoms[1]}, {size}"))


@emitter(forks_normface.CaffeInnerDistance)
def _inner_distance(e: Emit) -> list[str]:
    m = e.module
    if m.center_only:
        raise e.unsupported("InnerDistance with update_center_only (a training rule)")
    x = e.bottoms[0]
    flat = f"{x}.flatten({m.axis}).flatten(0, {m.axis - 1})"  # (items before axis, features)
    if len(m.blobs):
        centres = f"{e.param(0, 'centres')}.reshape({m.num_output}, -1)"
        if m.normalize:  # the fork rescales its blob at every forward
            centres = e.call("unit_rows", f"{centres}, 1e-6")
    else:
        centres = f"{e.bottoms[1]}.reshape({e.bottoms[1]}.shape[0], -1)"
    call = e.call("pairwise_distance", f"{flat}, {centres}, {m.l1}")
    if m.axis == 1:
        return e.assign(call)
    return e.assign(f"{call}.reshape(*{x}.shape[:{m.axis}], -1)")


@emitter(forks_segmentation.CaffeInterp)
def _interp(e: Emit) -> list[str]:
    r = e.module.rule
    size = tuple(e.top_shapes[0][2:4])
    return e.assign(e.call("caffe_interp", f"{e.bottoms[0]}, {size}, {r.pad_beg}, {r.pad_end}"))


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
    args = f"{', '.join(e.bottoms)}, {m.pooled}, {num(m.spatial_scale)}"
    return e.assign(e.call("roi_pooling", args))


@emitter(forks_detection.CaffePSROIPooling)
def _psroi_pooling(e: Emit) -> list[str]:
    m = e.module
    args = f"{', '.join(e.bottoms)}, {num(m.spatial_scale)}, {m.output_dim}, {m.group_size}"
    return e.assign(e.call("psroi_pooling", args))


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
    return e.assign(f"F.linear({x}, {e.call('unit_rows', f'{w}, 1e-12')}, {b})")


@emitter(forks_face.BottomWeightInnerProduct)
def _bottom_weight_ip(e: Emit) -> list[str]:
    m = e.module
    x, w = e.bottoms
    w = f"{w}.reshape({w}.shape[0], -1)" + (".t()" if m.transpose else "")
    b = e.param(0, "bias") if len(m.blobs) else "None"
    return e.assign(f"F.linear({x}.flatten({m.axis}), {w}, {b})")


@emitter(forks_face.CaffeMarginInnerProduct)
def _margin_ip(e: Emit) -> list[str]:
    """SphereFace's A-Softmax logits; lambda follows the fork's schedule over an iteration
    counter kept in the generated module (one step per forward)."""
    m = e.module
    if m.axis != 1:
        raise e.unsupported(f"MarginInnerProduct over axis {m.axis}")
    x, label = e.bottoms
    it = f"self.{e.out.fresh(f'{e.base}_iteration')}"
    e.out.init.append(f"{it} = {num(m.iteration)}")
    lam = e.local("lambda")
    schedule = f"{num(m.base)}, {num(m.gamma)}, {num(m.power)}, {num(m.lambda_min)}"
    weight = e.call("unit_rows", f"{e.param(0, 'weight')}, 0.0")
    labels = e.call("label_index", f"{label}, {x}.shape[0]")
    flat = f"{x}.reshape({x}.shape[0], -1)"
    margin = forks_face.MARGIN[m.kind]
    lines = [
        f"{it} = {e.call('float32', f'{it} + 1.0')}",
        f"{lam} = {e.call('margin_lambda', f'{it}, {schedule}')}",
        f"{e.tops[0]} = {e.call('margin_logits', f'{flat}, {weight}, {labels}, {margin}, {lam}')}",
    ]
    if len(e.tops) > 1:
        lines.append(f"{e.tops[1]} = torch.tensor([{lam}], dtype={x}.dtype)")
    return lines


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
