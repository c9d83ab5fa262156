"""Face-recognition layers of Caffe forks, with each fork's own forward and backward.

* ``MarginInnerProduct`` (wy1iu/sphereface, A-Softmax): weights re-normalised in place every
  forward; the target logit becomes (|x| psi(theta) + lambda x.w) / (1 + lambda) with
  lambda = max(lambda_min, base (1 + gamma iter)^-power) and ``iter`` a counter kept in the
  module (it starts at ``iteration`` and counts forwards; Caffe's TRAIN and TEST nets have
  separate counters, so this module keeps one per mode). The fork's backward is not the
  derivative of its forward: the (w, x) coefficients of the target term are scaled to unit
  length and the weight gradient is that of a plain InnerProduct.
* ``InnerProduct`` with ``normalize: true`` (happynear/caffe-windows, AM-Softmax): weight rows
  re-normalised in place (w / sqrt(|w|^2 + 1e-12)) before a plain InnerProduct; a second
  bottom may supply the weight (NormFace).
* ``LabelSpecificAdd`` / ``LabelSpecificRescale`` (happynear): TRAIN-phase changes of the
  target logit (AM-Softmax margin, NormFace rescaling), identity at TEST.
* ``CosinAddm`` / ``AdaCosAddmScale`` (xialuxi/arcface-caffe): cos(theta + m) on the target
  cosine with the fork's hand-written coefficient; AdaCos rescales by its adaptive s.
* NormFace's feature ``Normalize`` (``normalize_param``; SSD's ``Normalize`` with ``norm_param``
  is a different layer: :func:`build_feature_normalize` is what the ``Normalize`` registration
  calls for NormFace nets), arcface's ``NormL2``, happynear's ``Flip``.
* ``CenterLoss`` (ydwen/caffe-face): the centres are blob 0 and receive the fork's update
  rule -sum_{y_i = j}(x_i - c_j) / (1 + n_j) as their gradient, never scaled by the loss
  weight (the solver's lr_mult on the centre blob is the paper's alpha).
"""

from __future__ import annotations

import math
from typing import Any, TypedDict

import torch
import torch.nn.functional as F
from torch import nn

from caffe2torch.ir.shapes import (
    known,
    label_specific_shapes,
    legacy_4d,
    margin_inner_product_shapes,
    same_shape,
)
from caffe2torch.layers.bvlc.vision import CaffeInnerProduct, plain_inner_product
from caffe2torch.layers.emit import Emit, emitter, num
from caffe2torch.layers.fillers import make_filled
from caffe2torch.layers.portable import portable
from caffe2torch.layers.registry import BuildContext, Shape, register_layer
from caffe2torch.numerics import as_f32 as f32
from caffe2torch.proto import caffe_pb2

SINGLE = caffe_pb2.MarginInnerProductParameter.SINGLE
DOUBLE = caffe_pb2.MarginInnerProductParameter.DOUBLE
TRIPLE = caffe_pb2.MarginInnerProductParameter.TRIPLE
QUADRUPLE = caffe_pb2.MarginInnerProductParameter.QUADRUPLE


@portable
def label_index(labels: torch.Tensor, num: int) -> torch.Tensor:
    # static_cast<int>(label[i]): truncation toward zero, one label per item.
    return labels.detach().reshape(num, -1)[:, 0].to(torch.int64)


def _axis(ctx: BuildContext, axis: int) -> int:
    n = len(ctx.bottom_shapes[0])
    if not -n <= axis < n:
        raise ctx.error(f"axis {axis} is out of range for a {n}-axis bottom")
    return axis + n if axis < 0 else axis


def _check_labels(ctx: BuildContext, index: int = 1) -> None:
    data, labels = ctx.bottom_shapes[0], ctx.bottom_shapes[index]
    if not labels or labels[0] != data[0]:
        raise ctx.error(
            f"the label bottom {list(labels)} must have one label per item of {list(data)}"
        )


class _ModeCounter:
    """An iteration counter per mode: Caffe's TRAIN and TEST nets are separate layer objects,
    so each has its own counter; one module serves both here."""

    def __init__(self, start: float) -> None:
        self.counts = {True: start, False: start}

    def step(self, training: bool) -> float:
        self.counts[training] = f32(self.counts[training] + 1.0)
        return self.counts[training]

    def get(self, training: bool) -> float:
        return self.counts[training]


# ----------------------------------------------------------------------- MarginInnerProduct


# the margin m of each MarginInnerProductParameter.MarginType
MARGIN: dict[int, int] = {SINGLE: 1, DOUBLE: 2, TRIPLE: 3, QUADRUPLE: 4}


@portable
def float32(value: float) -> float:
    """``value`` rounded to float32 (the fork keeps its Dtype scalars in float)."""
    return torch.tensor(value, dtype=torch.float32).item()


@portable
def margin_lambda(
    iteration: float, base: float, gamma: float, power: float, lambda_min: float
) -> float:
    """SphereFace's lambda at ``iteration``: max(lambda_min, base (1 + gamma it)^-power),
    each step rounded to float as the fork computes it."""
    decay = float32(1.0 + float32(gamma * iteration))
    return max(float32(base * math.pow(decay, -power)), lambda_min)


@portable
def margin_terms(
    cos: torch.Tensor, m: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """psi(theta) of the target cosine for margin ``m`` (2, 3 or 4) and the fork's
    (coeff_w, coeff_x * |x|) before normalising. The sign tricks are the fork's:
    psi = (-1)^k cos(m theta) - 2k on the k-th interval."""
    s0 = torch.sign(cos)
    c2, c3, c4 = cos * cos, cos**3, cos**4
    if m == 2:
        psi = 2 * s0 * c2 - 1
        cw = 4 * s0 * cos
        cx = -(2 * s0 * c2 + 1)
    elif m == 3:
        s1 = torch.sign(torch.abs(cos) - 0.5)
        s2 = s0 * (1 + s1) - 2
        psi = s1 * (4 * c3 - 3 * cos) + s2
        cw = s1 * (12 * c2 - 3)
        cx = -(8 * s1 * c3 - s2)
    else:
        s3 = s0 * torch.sign(2 * c2 - 1)
        s4 = 2 * s0 + s3 - 3
        psi = s3 * (8 * c4 - 8 * c2 + 1) + s4
        cw = s3 * (32 * c3 - 16 * cos)
        cx = -(s3 * (24 * c4 - 8 * c2 - 1) - s4)
    return psi, cw, cx


@portable
def margin_logits(
    x: torch.Tensor, weight: torch.Tensor, label: torch.Tensor, m: int, lam: float
) -> torch.Tensor:
    """A-Softmax logits of (N, K) ``x`` with unit weight rows: x W^T, the label's logit
    replaced by (|x| psi(theta) + lambda x.w) / (1 + lambda) (margin ``m`` > 1)."""
    xw = x @ weight.t()
    if m == 1:
        return xw
    x_norm = torch.sqrt((x * x).sum(dim=1))
    rows = torch.arange(x.shape[0], device=x.device)
    xw_t = xw[rows, label]
    psi = margin_terms(xw_t / x_norm, m)[0]
    top = xw.clone()
    top[rows, label] = (x_norm * psi + lam * xw_t) / (1 + lam)
    return top


@portable
def unit_rows(weight: torch.Tensor, eps: float) -> torch.Tensor:
    """Each row of ``weight`` divided by sqrt(|row|^2 + eps)."""
    return weight / torch.sqrt((weight * weight).sum(dim=1, keepdim=True) + eps)


class _MarginFunction(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: Any, x: torch.Tensor, weight: torch.Tensor, label: torch.Tensor, kind: int, lam: float
    ) -> torch.Tensor:
        ctx.save_for_backward(x, weight, label)
        ctx.kind, ctx.lam = kind, lam
        return margin_logits(x, weight, label, MARGIN[kind], lam)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        x, weight, label = ctx.saved_tensors
        grad_w = grad.t() @ x if ctx.needs_input_grad[1] else None
        grad_x = None
        if ctx.needs_input_grad[0]:
            grad_x = grad @ weight
            if ctx.kind != SINGLE:
                lam = ctx.lam
                rows = torch.arange(x.shape[0], device=x.device)
                x_norm = torch.sqrt((x * x).sum(dim=1))
                w_t = weight[label]
                g_t = grad[rows, label]
                cos = (x * w_t).sum(dim=1) / x_norm
                _, cw, cx = margin_terms(cos, MARGIN[ctx.kind])
                cx = cx / x_norm
                norm = torch.sqrt(cw * cw + cx * cx)
                cw, cx = cw / norm, cx / norm
                # Replace the plain target term g w by the fork's margin term.
                scale = (g_t / (1 + lam)).unsqueeze(1)
                grad_x = (
                    grad_x
                    - g_t.unsqueeze(1) * w_t
                    + scale * (cw.unsqueeze(1) * w_t + cx.unsqueeze(1) * x)
                    + (lam / (1 + lam)) * g_t.unsqueeze(1) * w_t
                )
        return grad_x, grad_w, None, None, None


def _normalize_rows_(weight: torch.Tensor, eps: float) -> torch.Tensor:
    """Divide each row of ``weight`` by its L2 norm in place (Caffe changes the blob itself)
    and return it; skipped while tracing or exporting, where the blob must not change."""
    with torch.no_grad():
        normed = unit_rows(weight, eps)
        if not (torch.jit.is_tracing() or torch.compiler.is_compiling()):
            weight.copy_(normed)
            return weight
    return unit_rows(weight, eps)


class CaffeMarginInnerProduct(nn.Module):
    """A-Softmax: tops (logits, lambda); bottoms (features, label)."""

    def __init__(self, weight: torch.Tensor, axis: int, kind: int, schedule: dict[str, float],
                 iteration: int, num_tops: int) -> None:
        super().__init__()
        self.blobs = nn.ParameterList([nn.Parameter(weight)])
        self.axis = axis
        self.kind = kind
        self.base = schedule["base"]
        self.gamma = schedule["gamma"]
        self.power = schedule["power"]
        self.lambda_min = schedule["lambda_min"]
        self.counter = _ModeCounter(float(iteration))
        self.num_tops = num_tops

    @property
    def iteration(self) -> float:
        return self.counter.get(self.training)

    def lambda_at(self, iteration: float) -> float:
        return margin_lambda(iteration, self.base, self.gamma, self.power, self.lambda_min)

    def infer_shapes(self, shapes: list[Shape]) -> list[Shape]:
        return [known(s) for s in margin_inner_product_shapes(
            shapes[0], self.axis, int(self.blobs[0].shape[0]), self.num_tops)]

    def forward(
        self, x: torch.Tensor, label: torch.Tensor
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        lam = self.lambda_at(self.counter.step(self.training))
        # The fork normalises each weight row (no epsilon) in the blob itself.
        weight = _normalize_rows_(self.blobs[0], 0.0)
        lead = x.shape[: self.axis]
        flat = x.reshape(math.prod(lead), -1)
        labels = label_index(label, flat.shape[0])
        top = _MarginFunction.apply(flat, weight, labels, self.kind, lam)
        top = top.reshape(*lead, -1)
        if self.num_tops == 1:
            return top
        return top, torch.tensor([lam], dtype=x.dtype, device=x.device)


@register_layer(
    "MarginInnerProduct",
    param="margin_inner_product_param",
    bottoms=2,
    tops=(1, 2),
    blobs=("weight",),
)
def build_margin_inner_product(ctx: BuildContext) -> nn.Module:
    p = ctx.param
    _check_labels(ctx)
    axis = _axis(ctx, p.axis)
    if p.num_output <= 0:
        raise ctx.error("num_output must be > 0", hint="set margin_inner_product_param.num_output")
    k = math.prod(ctx.bottom_shapes[0][axis:])
    weight = make_filled((p.num_output, k), p.weight_filler, ctx.options.get("generator"))
    schedule = {
        "base": f32(p.base), "gamma": f32(p.gamma), "power": f32(p.power),
        "lambda_min": f32(p.lambda_min),
    }
    return CaffeMarginInnerProduct(weight, axis, int(p.type), schedule, int(p.iteration),
                                   ctx.num_tops)


# ------------------------------------------------------------- InnerProduct { normalize }


class NormalizedInnerProduct(CaffeInnerProduct):
    """happynear's InnerProduct with ``normalize: true``: each weight row is divided by
    sqrt(|w|^2 + 1e-12) in the blob, then a plain InnerProduct (plain gradients)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.transpose:
            raise RuntimeError("normalize with transpose is not supported by the fork")
        # the returned weight, not blobs[0]: while tracing the blob keeps its old values
        weight = _normalize_rows_(self.blobs[0], 1e-12)
        x = x.reshape((*x.shape[: self.axis], -1))
        return F.linear(x, weight, self.blobs[1] if len(self.blobs) > 1 else None)


class BottomWeightInnerProduct(nn.Module):
    """happynear's InnerProduct whose weight (N, K) is the second bottom (NormFace nets feed a
    Parameter or a normalised Parameter): y = x W^T (+ bias blob)."""

    def __init__(self, bias: torch.Tensor | None, axis: int, transpose: bool) -> None:
        super().__init__()
        self.blobs = nn.ParameterList([nn.Parameter(bias)] if bias is not None else [])
        self.axis = axis
        self.transpose = transpose

    def forward(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        x = x.reshape((*x.shape[: self.axis], -1))
        w = weight.reshape(weight.shape[0], -1)
        w = w.t() if self.transpose else w
        bias = self.blobs[0] if len(self.blobs) else None
        return F.linear(x, w, bias)


def build_inner_product_fork(ctx: BuildContext) -> nn.Module:
    """happynear's InnerProduct options, called by BVLC's InnerProduct builder: the weight
    as a second bottom, or ``normalize: true``."""
    p = ctx.param
    if len(ctx.bottom_shapes) == 2:
        axis = _axis(ctx, p.axis)
        k = math.prod(ctx.bottom_shapes[0][axis:])
        wshape = ctx.bottom_shapes[1]
        n = wshape[1] if p.transpose else wshape[0]
        if math.prod(wshape) != n * k:
            raise ctx.error(f"the weight bottom {list(wshape)} does not match {k} inputs")
        gen = ctx.options.get("generator")
        bias = make_filled((n,), p.bias_filler, gen) if p.bias_term else None
        return BottomWeightInnerProduct(bias, axis, bool(p.transpose))
    module = plain_inner_product(ctx)
    if not p.normalize:
        return module
    if p.transpose:
        raise ctx.error("normalize: true cannot be combined with transpose: true")
    bias = module.blobs[1].data if len(module.blobs) > 1 else None
    return NormalizedInnerProduct(module.blobs[0].data, bias, module.axis, False)


# ------------------------------------------------------------------------ LabelSpecificAdd


class CaffeLabelSpecificAdd(nn.Module):
    """TRAIN: target logit += bias where it is > -bias (AM-Softmax's cos - m); TEST: identity.
    With ``bias_base`` the bias anneals: base + (1 + gamma it)^power - 1 in [bias_min,
    bias_max], ``it`` counting forwards from ``iteration``. The gradient is the identity.
    Optional top 1 (shape {1}): the bias of this forward in TRAIN; at TEST the fork returns
    before writing it, so it keeps its zero-initialised value."""

    def __init__(self, bias: float, anneal: dict[str, float] | None, iteration: int,
                 num_tops: int = 1) -> None:
        super().__init__()
        self.bias = bias
        self.anneal = anneal
        self.iteration = iteration
        self.num_tops = num_tops

    def infer_shapes(self, shapes: list[Shape]) -> list[Shape]:
        return [known(s) for s in label_specific_shapes(shapes[0], self.num_tops)]

    def current_bias(self) -> float:
        if self.anneal is None:
            return self.bias
        a = self.anneal
        value = f32(a["base"] + f32(math.pow(f32(1.0 + a["gamma"] * self.iteration), a["power"]))
                    - 1.0)
        self.iteration += 1
        return min(max(value, a["min"]), a["max"])

    def forward(
        self, x: torch.Tensor, label: torch.Tensor
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        if not self.training:
            y, bias = x, 0.0
        else:
            bias = self.current_bias()
            num = x.shape[0]
            flat = x.reshape(num, -1)
            labels = label_index(label, num)
            rows = torch.arange(num, device=x.device)
            target = flat.detach()[rows, labels]
            add = torch.zeros_like(flat)
            add[rows, labels] = torch.where(target > -bias, bias, 0.0).to(flat.dtype)
            y = (flat + add).reshape(x.shape)
        if self.num_tops == 1:
            return y
        return y, torch.tensor([bias], dtype=x.dtype, device=x.device)


@register_layer("LabelSpecificAdd", param="label_specific_add_param", bottoms=2, tops=(1, 2))
def build_label_specific_add(ctx: BuildContext) -> nn.Module:
    p = ctx.param
    _check_labels(ctx)
    anneal = None
    if p.HasField("bias_base"):
        anneal = {
            "base": f32(p.bias_base), "gamma": f32(p.bias_gamma), "power": f32(p.bias_power),
            "min": f32(p.bias_min), "max": f32(p.bias_max),
        }
    return CaffeLabelSpecificAdd(f32(p.bias), anneal, int(p.iteration), ctx.num_tops)


# -------------------------------------------------------------------- LabelSpecificRescale


class _Anneal(TypedDict):
    base: float
    gamma: float
    power: float
    min: float | None
    max: float | None


class CaffeLabelSpecificRescale(nn.Module):
    """NormFace's rescaling of the target logit by ``positive_weight`` (``bias_fix``: plus
    1 - w; ``power_on_positive``: sign(x)|x|^w; ``for_ip``: only where it is > 0) and of the
    others by ``negative_weight``; TRAIN only unless ``rescale_test``. Optional top 1: the
    positive weight, which anneals in TRAIN when ``positive_weight_base`` is set. Gradients
    are the fork's (the derivative of each case)."""

    def __init__(self, p: Any, num_tops: int) -> None:
        super().__init__()
        self.positive_weight = f32(p.positive_weight)
        self.negative_weight = f32(p.negative_weight)
        self.rescale_test = bool(p.rescale_test)
        self.for_ip = bool(p.for_ip)
        self.bias_fix = bool(p.bias_fix)
        self.power_on_positive = bool(p.power_on_positive)
        self.anneal: _Anneal | None = None
        if p.HasField("positive_weight_base"):
            self.anneal = {
                "base": f32(p.positive_weight_base), "gamma": f32(p.gamma),
                "power": f32(p.power),
                "min": f32(p.positive_weight_min) if p.HasField("positive_weight_min") else None,
                "max": f32(p.positive_weight_max) if p.HasField("positive_weight_max") else None,
            }
        self.iteration = int(p.iteration)
        self.num_tops = num_tops

    def infer_shapes(self, shapes: list[Shape]) -> list[Shape]:
        return [known(s) for s in label_specific_shapes(shapes[0], self.num_tops)]

    def _weight(self) -> float:
        a = self.anneal
        if a is None or not self.training:
            return self.positive_weight
        self.iteration += 1
        w = f32(a["base"] * math.pow(f32(1.0 + a["gamma"] * self.iteration), -a["power"]))
        if a["min"] is not None:
            w = max(w, a["min"])
        if a["max"] is not None:
            w = min(w, a["max"])
        self.positive_weight = w
        return w

    def forward(
        self, x: torch.Tensor, label: torch.Tensor
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        pw = self._weight()
        y = x
        if self.training or self.rescale_test:
            num = x.shape[0]
            flat = x.reshape(num, -1)
            labels = label_index(label, num)
            is_target = F.one_hot(labels, flat.shape[1]).to(torch.bool)
            out = flat
            if pw != 1.0:
                if self.power_on_positive:
                    scaled = torch.sign(flat) * torch.abs(flat) ** pw
                else:
                    scaled = flat * pw + ((1.0 - pw) if self.bias_fix else 0.0)
                apply = is_target & ((flat.detach() > 0) if self.for_ip else True)
                out = torch.where(apply, scaled, out)
            if self.negative_weight != 1.0:
                out = torch.where(is_target, out, out * self.negative_weight)
            y = out.reshape(x.shape)
        if self.num_tops == 1:
            return y
        return y, torch.tensor([pw], dtype=x.dtype, device=x.device)


@register_layer(
    "LabelSpecificRescale", param="label_specific_rescale_param", bottoms=2, tops=(1, 2)
)
def build_label_specific_rescale(ctx: BuildContext) -> nn.Module:
    _check_labels(ctx)
    return CaffeLabelSpecificRescale(ctx.param, ctx.num_tops)


# ------------------------------------------------------------------ feature normalisation


class CaffeFeatureNormalize(nn.Module):
    """NormFace's Normalize: x / ||x|| over channels at each (n, h, w), with ||x|| =
    sqrt(sum x^2 + 1e-6) (L2) or sum |x| + 1e-6 (L1). The top is 4-D (num, channels, height,
    width) as the fork reshapes it; optional top 1 is the norm (num, 1, height, width), through
    which gradients flow only with ``bp_norm``. Autograd's gradient equals the fork's."""

    def __init__(self, kind: str, bp_norm: bool, num_tops: int) -> None:
        super().__init__()
        self.kind = kind
        self.bp_norm = bp_norm
        self.num_tops = num_tops

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        x4 = x.reshape(legacy_4d(tuple(x.shape)))
        if self.kind == "L2":
            norm = torch.sqrt((x4 * x4).sum(dim=1, keepdim=True) + 1e-6)
        else:
            norm = torch.abs(x4).sum(dim=1, keepdim=True) + 1e-6
        y = x4 / norm
        if self.num_tops == 1:
            return y
        return y, norm if self.bp_norm else norm.detach()


def build_feature_normalize(ctx: BuildContext) -> nn.Module:
    """Builder for NormFace's ``Normalize`` (the ``Normalize`` registration of forks/ssd.py
    dispatches here for NormFace layers)."""
    p = ctx.layer.normalize_param
    if len(ctx.bottom_shapes) != 1:
        raise ctx.error(f"takes exactly 1 bottom, got {len(ctx.bottom_shapes)}")
    if ctx.num_tops not in (1, 2):
        raise ctx.error(f"takes 1 or 2 tops, got {ctx.num_tops}")
    if len(ctx.bottom_shapes[0]) > 4:
        raise ctx.error(f"needs a bottom of at most 4 axes, got {list(ctx.bottom_shapes[0])}")
    if p.normalize_type not in ("L1", "L2"):
        raise ctx.error(
            f'normalize_type "{p.normalize_type}" is not implemented by the fork',
            hint='use normalize_type: "L2" or "L1"',
        )
    return CaffeFeatureNormalize(p.normalize_type, bool(p.bp_norm) and ctx.num_tops == 2,
                                 ctx.num_tops)


class CaffeNormL2(nn.Module):
    """arcface-caffe's NormL2: x / sqrt(sum x^2 + 1e-7) over each item (all of C*H*W); the top
    is reshaped to 4-D as the fork does."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        num = x.shape[0]
        flat = x.reshape(num, -1)
        y = flat / torch.sqrt((flat * flat).sum(dim=1, keepdim=True) + 1e-7)
        return y.reshape(legacy_4d(tuple(x.shape)))


@register_layer("NormL2")
def build_norm_l2(ctx: BuildContext) -> nn.Module:
    if len(ctx.bottom_shapes[0]) > 4:
        raise ctx.error(f"needs a bottom of at most 4 axes, got {list(ctx.bottom_shapes[0])}")
    return CaffeNormL2()


# ------------------------------------------------------------------------------------ Flip


class CaffeFlip(nn.Module):
    """happynear's Flip: mirror width (default) and/or height of a (num, channels, height,
    width) blob; the gradient is mirrored back."""

    def __init__(self, width: bool, height: bool) -> None:
        super().__init__()
        self.dims = [d for d, on in ((3, width), (2, height)) if on]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.dims:
            return x.clone()
        x4 = x.reshape(legacy_4d(tuple(x.shape)))
        return torch.flip(x4, self.dims).reshape(x.shape)


@register_layer("Flip", param="flip_param")
def build_flip(ctx: BuildContext) -> nn.Module:
    if len(ctx.bottom_shapes[0]) > 4:
        raise ctx.error(f"needs a bottom of at most 4 axes, got {list(ctx.bottom_shapes[0])}")
    return CaffeFlip(bool(ctx.param.flip_width), bool(ctx.param.flip_height))


# ------------------------------------------------------------------ CosinAddm / AdaCos


class _ArcMarginFunction(torch.autograd.Function):
    """cos(theta + m) at each item's target (cos > 1 is taken as 1; below cos(pi - m) the
    fork uses cos - m sin m); gradient: the fork's coefficient cos m + sin m cos / sin
    (1 where sin = 0 or on the linear branch), other entries pass ``scale`` * grad."""

    @staticmethod
    def forward(
        ctx: Any, x: torch.Tensor, labels: torch.Tensor, m: float, scale: float
    ) -> torch.Tensor:
        num = x.shape[0]
        flat = x.reshape(num, -1)
        valid = labels >= 0
        rows = torch.arange(num, device=x.device)[valid]
        cols = labels[valid]
        cos = torch.clamp(flat[rows, cols], max=1.0)
        sin = torch.sqrt(1.0 - cos * cos)
        linear = cos <= math.cos(math.pi - m)
        target = torch.where(
            linear, cos - math.sin(math.pi - m) * m, cos * math.cos(m) - sin * math.sin(m)
        )
        out = flat.clone()
        out[rows, cols] = target.to(out.dtype)
        ctx.save_for_backward(rows, cols, cos, linear)
        ctx.m, ctx.scale, ctx.shape = m, scale, x.shape
        return out.reshape(x.shape) * scale

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        rows, cols, cos, linear = ctx.saved_tensors
        m = ctx.m
        sin = torch.sqrt(torch.clamp(1.0 - cos * cos, min=0.0))
        coeff = math.cos(m) + math.sin(m) * cos / torch.where(sin == 0, 1.0, sin)
        coeff = torch.where((sin == 0) | linear, torch.ones_like(coeff), coeff)
        out = grad.reshape(grad.shape[0], -1) * ctx.scale
        out = out.clone()
        out[rows, cols] = out[rows, cols] * coeff
        return out.reshape(ctx.shape), None, None, None


class CaffeCosinAddm(nn.Module):
    """ArcFace's additive angular margin on cosine logits (TRAIN; TEST only with
    ``transform_test``, as the fork's GPU code does; its CPU code applies it in both)."""

    def __init__(self, m: float, transform_test: bool) -> None:
        super().__init__()
        self.m = m
        self.transform_test = transform_test

    def infer_shapes(self, shapes: list[Shape]) -> list[Shape]:
        return [same_shape(shapes)]  # CosinAddmLayer::Reshape: like the cosines

    def forward(self, x: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        if not self.training and not self.transform_test:
            return x
        return _ArcMarginFunction.apply(x, label_index(label, x.shape[0]), self.m, 1.0)


@register_layer("CosinAddm", param="cosin_add_m_param", bottoms=2)
def build_cosin_add_m(ctx: BuildContext) -> nn.Module:
    _check_labels(ctx)
    return CaffeCosinAddm(f32(ctx.param.m), bool(ctx.param.transform_test))


class CaffeAdaCosAddmScale(nn.Module):
    """arcface-caffe's AdaCos: the ArcFace margin, then a scale s updated every forward from
    the previous s: s <- log(mean_i(1 + sum_{j != y_i} exp(s x_ij))) / cos(min(mean(acos x),
    pi/4)), starting at sqrt(2) log(num_classes - 1); the top is s * margin(x) and s is a
    constant for the gradient. Each mode (TRAIN/TEST) keeps its own s."""

    def __init__(self, m: float, num_classes: float) -> None:
        super().__init__()
        self.m = m
        start = f32(math.sqrt(2.0) * math.log(num_classes - 1))
        self.scale = {True: start, False: start}

    def infer_shapes(self, shapes: list[Shape]) -> list[Shape]:
        return [same_shape(shapes)]  # AdaCosAddmScaleLayer::Reshape: like the cosines

    def forward(self, x: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        num = x.shape[0]
        labels = label_index(label, num)
        with torch.no_grad():
            flat = x.detach().reshape(num, -1).to(torch.float64)
            mean_theta = min(float(torch.acos(flat).mean()), math.pi / 4)
            cos_med = f32(math.cos(mean_theta))
            keep = torch.ones_like(flat)
            valid = labels >= 0
            keep[torch.arange(num, device=x.device)[valid], labels[valid]] = 0.0
            b = torch.exp(f32(self.scale[self.training]) * flat * keep).sum() / num
            scale = f32(math.log(float(b)) / cos_med)
        self.scale[self.training] = scale
        return _ArcMarginFunction.apply(x, labels, self.m, scale)


@register_layer("AdaCosAddmScale", param="adacos_add_m_scale_param", bottoms=2)
def build_adacos(ctx: BuildContext) -> nn.Module:
    _check_labels(ctx)
    p = ctx.param
    if p.num_classes <= 2:
        raise ctx.error(f"num_classes must be > 2, got {p.num_classes}")
    return CaffeAdaCosAddmScale(f32(p.m), float(p.num_classes))


# ------------------------------------------------------------------------------ CenterLoss


@portable
def center_loss(
    x: torch.Tensor, centers: torch.Tensor, labels: torch.Tensor, l1: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """Center loss of (N, K) ``x``: sum_i |x_i - c_{y_i}|^2 / N / 2 (``l1``: sum |x_i -
    c_{y_i}| / N). Returns (loss, x - c_y)."""
    diff = x - centers[labels]
    num = x.shape[0]
    loss = torch.abs(diff).sum() / num if l1 else (diff * diff).sum() / num / 2
    return loss, diff


class _CenterLossFunction(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: Any, x: torch.Tensor, centers: torch.Tensor, labels: torch.Tensor, l1: bool
    ) -> torch.Tensor:
        loss, diff = center_loss(x, centers, labels, l1)
        ctx.save_for_backward(diff, labels)
        ctx.l1, ctx.num_centers = l1, centers.shape[0]
        return loss

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        diff, labels = ctx.saved_tensors
        num = diff.shape[0]
        grad_c = None
        used = torch.sign(diff) if ctx.l1 else diff
        if ctx.needs_input_grad[1]:
            # The fork's update: -sum_{y_i = j} d_i / (1 + n_j); no loss-weight factor.
            var_sum = torch.zeros(
                (ctx.num_centers, diff.shape[1]), dtype=diff.dtype, device=diff.device
            ).index_add_(0, labels, -used)
            count = torch.bincount(labels, minlength=ctx.num_centers).to(diff.dtype)
            grad_c = var_sum / (count + 1).unsqueeze(1)
        grad_x = None
        if ctx.needs_input_grad[0]:
            # happynear's L1 form turns the distances into signs only while the centres
            # learn; with frozen centres its bottom gradient uses the raw distances.
            source = used if ctx.needs_input_grad[1] or not ctx.l1 else diff
            grad_x = source * (grad / num)
        return grad_x, grad_c, None, None


class CaffeCenterLoss(nn.Module):
    """CenterLoss: sum_i |x_i - c_{y_i}|^2 / N / 2 (L1: sum |.| / N); centres are blob 0."""

    def __init__(self, centers: torch.Tensor, axis: int, l1: bool) -> None:
        super().__init__()
        self.blobs = nn.ParameterList([nn.Parameter(centers)])
        self.axis = axis
        self.l1 = l1

    def forward(self, x: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        num = x.shape[0]
        flat = x.reshape(num, -1)
        return _CenterLossFunction.apply(flat, self.blobs[0], label_index(label, num), self.l1)


@register_layer(
    "CenterLoss", param="center_loss_param", bottoms=2, blobs=("centers",), loss=True
)
def build_center_loss(ctx: BuildContext) -> nn.Module:
    p = ctx.param
    shape, labels = ctx.bottom_shapes
    axis = _axis(ctx, p.axis)
    if math.prod(labels[1:]) != 1 or labels[0] != shape[0]:
        raise ctx.error(f"the label bottom must be one value per item, got {list(labels)}")
    k = math.prod(shape[axis:])
    if k * shape[0] != math.prod(shape):
        raise ctx.error(f"features {list(shape)} must be flat from axis 1 (axis {p.axis})")
    if p.num_output <= 0:
        raise ctx.error("num_output (the number of classes) must be > 0")
    if p.distance_type not in ("L1", "L2"):
        raise ctx.error(f'distance_type must be "L1" or "L2", got "{p.distance_type}"')
    centers = make_filled((p.num_output, k), p.center_filler, ctx.options.get("generator"))
    return CaffeCenterLoss(centers, axis, p.distance_type == "L1")


# ----------------------------------------------------------------------------- standalone source
# convert's emitters for the module classes above (caffe2torch.layers.emit)


@emitter(CaffeFeatureNormalize)
def _emit_feature_normalize(e: Emit) -> list[str]:
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


@emitter(CaffeNormL2)
def _emit_norm_l2(e: Emit) -> list[str]:
    x, top = e.bottoms[0], e.tops[0]
    shape = ", ".join(map(str, (*e.bottom_shapes[0], 1, 1, 1)[1:4]))
    return [
        f"{top} = {x}.reshape({x}.shape[0], -1)",
        f"{top} = {top} / torch.sqrt(({top} * {top}).sum(dim=1, keepdim=True) + 1e-7)",
        f"{top} = {top}.reshape({x}.shape[0], {shape})",
    ]


@emitter(CaffeFlip)
def _emit_flip(e: Emit) -> list[str]:
    dims = e.module.dims
    x = e.bottoms[0]
    return e.assign(f"torch.flip({x}, {list(dims)})" if dims else f"{x}.clone()")


@emitter(NormalizedInnerProduct)
def _emit_normalized_ip(e: Emit) -> list[str]:
    """happynear's InnerProduct { normalize: true }: unit weight rows, then x W^T + b."""
    m = e.module
    x = e.bottoms[0]
    if len(e.bottom_shapes[0]) != m.axis + 1:
        x = f"{x}.flatten({m.axis})"
    w = e.param(0, "weight")
    b = e.param(1, "bias") if len(m.blobs) > 1 else "None"
    return e.assign(f"F.linear({x}, {e.call('unit_rows', f'{w}, 1e-12')}, {b})")


@emitter(BottomWeightInnerProduct)
def _emit_bottom_weight_ip(e: Emit) -> list[str]:
    m = e.module
    x, w = e.bottoms
    w = f"{w}.reshape({w}.shape[0], -1)" + (".t()" if m.transpose else "")
    b = e.param(0, "bias") if len(m.blobs) else "None"
    return e.assign(f"F.linear({x}.flatten({m.axis}), {w}, {b})")


@emitter(CaffeMarginInnerProduct)
def _emit_margin_ip(e: Emit) -> list[str]:
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
    margin = MARGIN[m.kind]
    lines = [
        f"{it} = {e.call('float32', f'{it} + 1.0')}",
        f"{lam} = {e.call('margin_lambda', f'{it}, {schedule}')}",
        f"{e.tops[0]} = {e.call('margin_logits', f'{flat}, {weight}, {labels}, {margin}, {lam}')}",
    ]
    if len(e.tops) > 1:
        lines.append(f"{e.tops[1]} = torch.tensor([{lam}], dtype={x}.dtype)")
    return lines


@emitter(CaffeCosinAddm)
def _emit_cosin_add_m(e: Emit) -> list[str]:
    m = e.module
    if not m.training and not m.transform_test:
        return [f"# {e.layer.name}: CosinAddm leaves the logits alone at test time",
                *e.assign(e.bottoms[0])]
    raise e.unsupported("CosinAddm applying its margin (TRAIN phase or transform_test)")


@emitter(CaffeLabelSpecificAdd)
def _emit_label_specific_add(e: Emit) -> list[str]:
    if e.module.training:
        raise e.unsupported("LabelSpecificAdd in the TRAIN phase")
    lines = [f"# {e.layer.name}: LabelSpecificAdd is the identity at test time",
             *e.assign(e.bottoms[0])]
    if len(e.tops) == 2:  # the bias top, never written at test time
        lines.append(f"{e.tops[1]} = torch.zeros(1)")
    return lines


@emitter(CaffeLabelSpecificRescale)
def _emit_label_specific_rescale(e: Emit) -> list[str]:
    m = e.module
    if m.training or m.rescale_test:
        raise e.unsupported("LabelSpecificRescale rescaling its logits (TRAIN or rescale_test)")
    lines = [f"# {e.layer.name}: LabelSpecificRescale is the identity at test time",
             *e.assign(e.bottoms[0])]
    if len(e.tops) == 2:
        lines.append(f"{e.tops[1]} = torch.tensor([{num(m.positive_weight)}])")
    return lines


@emitter(CaffeCenterLoss)
def _emit_center(e: Emit) -> list[str]:
    m = e.module
    x, label = e.bottoms[:2]
    flat = f"{x}.reshape({x}.shape[0], -1)"
    labels = e.call("label_index", f"{label}, {x}.shape[0]")
    args = f"{flat}, {e.param(0, 'centers')}, {labels}, {m.l1}"
    return e.assign(f"{e.call('center_loss', args)}[0]")
