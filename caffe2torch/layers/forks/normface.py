"""NormFace's metric layers (happynear/caffe-windows, the NormFace paper's own fork).

* ``InnerDistance``: distances to class centres instead of dot products. With one bottom the
  centres are the layer's blob (N x K, or K x N read as N x K when ``transpose``, as the fork
  indexes it); with two or three bottoms bottom 1 holds them. top[m, n] = sum_k (x_mk -
  w_nk)^2 (``distance_type: "L2"``) or sum_k |x_mk - w_nk| ("L1"). ``normalize`` rescales the
  blob's rows in place before every forward (w / sqrt(|w|^2 + 1e-6)). ``update_center_only``
  sends the centre gradient only to the row of each item's label (the last bottom). The
  fork's final version has no bias (``bias_term`` is read but never used).
* ``GeneralContrastiveLoss``: bottom 0 holds distances (N x C) to every class centre, bottom 1
  the labels. Per item, the target distance d_y adds min(thresh, max(0, d_y - m_pos)) *
  w_pos; each other class with d_j < m_neg adds max(0, m_neg - d_j) * w_neg (or exp(-d_j) *
  w_neg with ``exp_negative_weight``). ``positive_first`` drops the negatives of items whose
  d_y > positive_upper_bound; ``max_positive_only`` keeps the positive term of one item only
  (the fork keeps the smallest, first one); ``max_negative_only`` keeps one negative per
  item (the largest, first one, compared with column 0's term as the fork starts there).
  Loss = sum |terms| / N. The second top is [mean target distance, mean negative hinge]
  (+ the running intra-class mean with ``add_intra_mae``, which also raises m_neg). The
  gradient is the fork's hand-written one: +w_pos on targets inside (m_pos, thresh), -w_neg
  (or -exp(-d) w_neg) on kept negatives, negatives rescaled when ``normalize_negative`` is
  set, all times loss_weight / N; the distances top passes no gradient. With three bottoms
  the fork reads the values from bottom 2 and writes the gradient to bottom 0.
* ``GeneralTripletLoss``: same bottoms; each other class adds max(0, d_y + margin - d_j) *
  w_neg; ``hardest_only`` keeps the largest positive term per item; ``positive_first`` as
  above. Loss = sum / N; second top [mean d_y, mean d_j over the others]. Gradient: -w_neg
  on the violating (or hardest) negatives, +w_pos on the target when ``add_center_loss`` or
  some negative violates, times loss_weight / N (and bottom 2's per-item weights if given).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from caffe2torch.layers.emit import Emit, emitter
from caffe2torch.layers.fillers import make_filled
from caffe2torch.layers.forks.face import unit_rows
from caffe2torch.layers.portable import portable
from caffe2torch.layers.registry import BuildContext, register_layer
from caffe2torch.numerics import f32


def _labels(labels: torch.Tensor, num: int) -> torch.Tensor:
    # static_cast<int>(label[i]): truncation toward zero, one label per item.
    return labels.detach().reshape(num, -1)[:, 0].to(torch.int64)


def _check_label_bottom(ctx: BuildContext) -> None:
    data, labels = ctx.bottom_shapes[0], ctx.bottom_shapes[1]
    if not labels or labels[0] != data[0] or math.prod(labels) != data[0]:
        raise ctx.error(f"the label bottom {list(labels)} must hold one label per item of "
                        f"{list(data)}")


# ---------------------------------------------------------------------------- InnerDistance


@portable
def pairwise_distance(x: torch.Tensor, w: torch.Tensor, l1: bool) -> torch.Tensor:
    """(M, N) sum_k (x_mk - w_nk)^2, or sum_k |x_mk - w_nk| when ``l1``."""
    diff = x.unsqueeze(1) - w.unsqueeze(0)
    return diff.abs().sum(dim=2) if l1 else (diff * diff).sum(dim=2)


class CaffeInnerDistance(nn.Module):
    def __init__(
        self,
        axis: int,
        l1: bool,
        weight: torch.Tensor | None,
        num_output: int,
        normalize: bool,
        center_only: bool,
    ) -> None:
        super().__init__()
        self.axis = axis
        self.l1 = l1
        self.num_output = num_output
        self.normalize = normalize
        self.center_only = center_only
        self.blobs = nn.ParameterList([nn.Parameter(weight)] if weight is not None else [])

    def forward(self, x: torch.Tensor, *rest: torch.Tensor) -> torch.Tensor:
        lead = tuple(x.shape[: self.axis])
        flat = x.reshape(math.prod(lead), -1)
        if len(self.blobs):
            weight = self.blobs[0]
            if self.normalize and weight.device.type != "meta":
                with torch.no_grad():  # the fork rescales its blob in place, every forward
                    rows = weight.view(self.num_output, -1)
                    rows.copy_(unit_rows(rows, 1e-6))
            centres = weight.reshape(self.num_output, -1)  # transpose: same memory, as the fork
        else:
            centres = rest[0].reshape(rest[0].shape[0], -1)
        out = pairwise_distance(flat, centres, self.l1)
        if self.center_only and out.device.type != "meta":
            # Gradient to the centre of each item's label only: value unchanged, the centre
            # path of the other rows detached.
            labels = _labels(rest[-1], flat.shape[0])
            mask = torch.nn.functional.one_hot(labels, centres.shape[0]).to(out.dtype)
            fixed = pairwise_distance(flat, centres.detach(), self.l1)
            moving = pairwise_distance(flat.detach(), centres, self.l1)
            out = fixed + mask * (moving - moving.detach())
        return out.reshape(*lead, out.shape[1])

    def extra_repr(self) -> str:
        kind = "L1" if self.l1 else "L2"
        return f"distance={kind}, axis={self.axis}, normalize={self.normalize}"


@register_layer("InnerDistance", param="inner_distance_param", bottoms=(1, 3), blobs=("weight",))
def build_inner_distance(ctx: BuildContext) -> nn.Module:
    p = ctx.param
    shape = ctx.bottom_shapes[0]
    axis = p.axis + len(shape) if p.axis < 0 else p.axis
    if not 0 <= axis < len(shape):
        raise ctx.error(f"axis {p.axis} is out of range for a {len(shape)}-axis bottom")
    if p.distance_type not in ("L1", "L2"):
        raise ctx.error(f'distance_type must be "L1" or "L2", got "{p.distance_type}"')
    k = math.prod(shape[axis:])
    n_bottoms = len(ctx.bottom_shapes)
    weight = None
    num_output = int(p.num_output)
    if n_bottoms == 1:
        if num_output <= 0:
            raise ctx.error("num_output must be > 0 when the centres are the layer's blob")
        wshape = (k, num_output) if p.transpose else (num_output, k)
        weight = make_filled(wshape, p.weight_filler, ctx.options.get("generator"))
    else:
        centres = ctx.bottom_shapes[1]
        if p.update_center_only and n_bottoms == 2:
            raise ctx.error(
                "update_center_only needs three bottoms (features, centres, labels)",
                hint="the fork reads the labels from the last bottom and the centres from "
                "bottom 1",
            )
        if math.prod(centres[1:]) != k:
            raise ctx.error(f"centres {list(centres)} must hold {k} values per row, as the "
                            f"features from axis {axis}")
        num_output = centres[0]
    return CaffeInnerDistance(
        axis, p.distance_type == "L1", weight, num_output, bool(p.normalize),
        bool(p.update_center_only) and n_bottoms == 3,
    )


# ------------------------------------------------------------------- GeneralContrastiveLoss


def _rows(values: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor,
                                                                 torch.Tensor]:
    """(N, C) values, the labels and the (N, C) target mask."""
    num = values.shape[0]
    d = values.reshape(num, -1)
    lab = _labels(labels, num)
    return d, lab, nn.functional.one_hot(lab, d.shape[1]).to(torch.bool)


def _first_argmax(values: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
    """Per row, the first column of the largest allowed value (column 0 when none)."""
    masked = torch.where(allowed, values, torch.full_like(values, -math.inf))
    return masked.argmax(dim=1)


def _zero(t: torch.Tensor) -> torch.Tensor:
    return torch.zeros_like(t)


def contrastive_forward(
    d: torch.Tensor, lab: torch.Tensor, target: torch.Tensor, cfg: dict, neg_margin: float
) -> tuple[torch.Tensor, int, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The fork's per-element terms (its bottom_diff after Forward), the kept positive row
    (-1: all), the kept negative column per row, and the two distance sums."""
    num, dim = d.shape
    pos = torch.clamp(torch.clamp(d - cfg["positive_margin"], min=0.0),
                      max=cfg["positive_outlier_thresh"])
    inside = ~target & (d < neg_margin)
    hinge = torch.clamp(neg_margin - d, min=0.0)
    neg = torch.exp(-d) if cfg["exp_negative_weight"] else hinge
    terms = torch.where(target, pos * cfg["positive_weight"],
                        torch.where(inside, neg * cfg["negative_weight"], _zero(d)))
    # max_negative_only: the fork starts at column 0 and moves to strictly larger in-margin
    # terms, before positive_first zeroes a row.
    best = _first_argmax(terms, inside)
    wins = terms.gather(1, best[:, None]).squeeze(1) > terms[:, 0]
    keep_col = torch.where(wins, best, _zero(best))
    if cfg["positive_first"]:
        d_y = d.gather(1, lab[:, None])
        terms = torch.where((d_y > cfg["positive_upper_bound"]) & ~target, _zero(terms), terms)
    keep_row = -1
    if cfg["max_positive_only"]:
        keep_row = int(torch.argmin(terms.gather(1, lab[:, None]).squeeze(1)))  # first smallest
        others = target & (torch.arange(num, device=d.device) != keep_row)[:, None]
        terms = torch.where(others, _zero(terms), terms)
    if cfg["max_negative_only"]:
        cols = torch.arange(dim, device=d.device)[None, :]
        terms = torch.where(~target & (cols != keep_col[:, None]), _zero(terms), terms)
    return terms, keep_row, keep_col, pos.masked_select(target).sum(), (hinge * inside).sum()


def contrastive_backward(
    d: torch.Tensor, lab: torch.Tensor, target: torch.Tensor, cfg: dict, neg_margin: float,
    keep_row: int, keep_col: torch.Tensor,
) -> torch.Tensor:
    """The fork's Backward_cpu before the loss_weight / N scale."""
    num, dim = d.shape
    pw = cfg["positive_weight"]
    first = _zero(target)
    if cfg["positive_first"]:
        first = (d.gather(1, lab[:, None]) > cfg["positive_upper_bound"]).expand_as(target)
    pos_ok = (d > cfg["positive_margin"]) & (d < cfg["positive_outlier_thresh"])
    if keep_row >= 0:
        pos_ok = pos_ok & (torch.arange(num, device=d.device) == keep_row)[:, None]
    kept = ~target & (d < neg_margin) & ~first
    if cfg["max_negative_only"]:
        kept = kept & (torch.arange(dim, device=d.device)[None, :] == keep_col[:, None])
    weight = cfg["negative_weight"]
    neg = torch.exp(-d) * weight if cfg["exp_negative_weight"] else torch.full_like(d, weight)
    neg = torch.where(kept, neg, _zero(neg))
    pos = torch.where(pos_ok | first, torch.full_like(d, pw), _zero(d))
    diff = torch.where(target, pos, -neg)
    if cfg["normalize_negative"] is not None:
        scale = float(neg.sum().abs()) / cfg["normalize_negative"] / num
        if scale > pw:
            diff = torch.where(target, diff, diff / scale)
    return diff


class _GeneralContrastiveFunction(torch.autograd.Function):
    """(loss, distances) from ``values``; the gradient goes to ``x`` (bottom 0)."""

    @staticmethod
    def forward(
        ctx: Any, x: torch.Tensor, values: torch.Tensor, labels: torch.Tensor, cfg: dict,
        neg_margin: float,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        d, lab, target = _rows(values.detach(), labels)
        num, dim = d.shape
        terms, keep_row, keep_col, pos_sum, neg_sum = contrastive_forward(
            d, lab, target, cfg, neg_margin)
        ctx.save_for_backward(d, lab, target, keep_col)
        ctx.cfg, ctx.neg_margin, ctx.keep_row, ctx.shape = cfg, neg_margin, keep_row, x.shape
        distances = torch.stack([pos_sum / num, neg_sum / num / max(dim - 1, 1)])
        mean_pos = pos_sum / num
        ctx.mark_non_differentiable(distances, mean_pos)
        return terms.abs().sum() / num, distances, mean_pos

    @staticmethod
    def backward(
        ctx: Any, grad: torch.Tensor, *_unused: torch.Tensor | None
    ) -> tuple[torch.Tensor | None, ...]:
        d, lab, target, keep_col = ctx.saved_tensors
        diff = contrastive_backward(d, lab, target, ctx.cfg, ctx.neg_margin, ctx.keep_row,
                                    keep_col)
        return (diff * (grad / d.shape[0])).reshape(ctx.shape), None, None, None, None


CONTRASTIVE_FIELDS = (
    "positive_margin", "negative_margin", "positive_weight", "negative_weight",
    "positive_outlier_thresh", "max_negative_only", "max_positive_only", "positive_first",
    "positive_upper_bound", "exp_negative_weight", "add_intra_mae", "max_negative_margin",
)


class CaffeGeneralContrastiveLoss(nn.Module):
    def __init__(self, cfg: dict, num_tops: int) -> None:
        super().__init__()
        self.cfg = cfg
        self.num_tops = num_tops
        self.intra_mae = 0.0  # the fork's running mean of the target distance

    def _margin(self) -> float:
        margin = self.cfg["negative_margin"]
        return float(f32(self.intra_mae + margin)) if self.cfg["add_intra_mae"] else margin

    def forward(self, x: torch.Tensor, labels: torch.Tensor, *values: torch.Tensor) -> Any:
        n = 3 if self.cfg["add_intra_mae"] else 2
        if x.device.type == "meta":
            loss, distances = x.new_empty(()), x.new_empty((n,))
        else:
            source = values[0] if values else x
            loss, distances, mean_pos = _GeneralContrastiveFunction.apply(
                x, source, labels, self.cfg, self._margin())
            mae = 0.99 * self.intra_mae + 0.01 * float(mean_pos)
            self.intra_mae = float(f32(min(mae, self.cfg["max_negative_margin"])))
            if self.cfg["add_intra_mae"]:
                distances = torch.cat([distances, distances.new_tensor([self.intra_mae])])
        return loss if self.num_tops == 1 else (loss, distances)


def _check_distances(ctx: BuildContext) -> None:
    _check_label_bottom(ctx)
    shapes = ctx.bottom_shapes
    if len(shapes) == 3 and shapes[2][0] != shapes[0][0]:
        raise ctx.error(f"bottom 2 {list(shapes[2])} must have the batch of bottom 0 "
                        f"{list(shapes[0])}")


@register_layer(
    "GeneralContrastiveLoss", param="general_contrastive_loss_param", bottoms=(2, 3),
    tops=(1, 2), loss=True,
)
def build_general_contrastive_loss(ctx: BuildContext) -> nn.Module:
    p = ctx.param
    _check_distances(ctx)
    if len(ctx.bottom_shapes) == 3 and tuple(ctx.bottom_shapes[2]) != tuple(ctx.bottom_shapes[0]):
        raise ctx.error("bottom 2 (the distances read) must have the shape of bottom 0")
    cfg: dict[str, Any] = {name: getattr(p, name) for name in CONTRASTIVE_FIELDS}
    cfg = {k: (bool(v) if isinstance(v, bool) else float(f32(v))) for k, v in cfg.items()}
    cfg["normalize_negative"] = (
        float(f32(p.normalize_negative)) if p.HasField("normalize_negative") else None
    )
    return CaffeGeneralContrastiveLoss(cfg, ctx.num_tops)


# ----------------------------------------------------------------------- GeneralTripletLoss


def triplet_forward(
    d: torch.Tensor, lab: torch.Tensor, target: torch.Tensor, cfg: dict
) -> tuple[torch.Tensor, torch.Tensor]:
    """The fork's per-element terms after Forward and the hardest column per row (-1:
    none)."""
    d_y = d.gather(1, lab[:, None])
    terms = torch.clamp(d_y + cfg["margin"] - d, min=0.0) * cfg["negative_weight"]
    terms = torch.where(target, _zero(terms), terms)
    hardest = _first_argmax(terms, ~target & (terms > 0))
    has = (terms > 0).any(dim=1)
    hardest = torch.where(has, hardest, torch.full_like(hardest, -1))
    if cfg["hardest_only"]:
        cols = torch.arange(d.shape[1], device=d.device)[None, :]
        drop = has[:, None] & ~target & (cols != hardest[:, None])
        terms = torch.where(drop, _zero(terms), terms)
    if cfg["positive_first"]:
        terms = torch.where((d_y > cfg["positive_upper_bound"]) & ~target, _zero(terms), terms)
    return terms, hardest


def triplet_backward(
    d: torch.Tensor, lab: torch.Tensor, target: torch.Tensor, cfg: dict,
    terms: torch.Tensor, hardest: torch.Tensor,
) -> torch.Tensor:
    """The fork's Backward_cpu before the per-item weights and the loss_weight / N scale.
    Where it writes nothing, the forward's terms stay (the fork reuses bottom_diff)."""
    d_y = d.gather(1, lab[:, None])
    cols = torch.arange(d.shape[1], device=d.device)[None, :]
    nw, pw = cfg["negative_weight"], cfg["positive_weight"]
    if cfg["hardest_only"]:
        is_hard = (cols == hardest[:, None]) & (hardest[:, None] >= 0)
        hard_value = d.gather(1, hardest.clamp(min=0)[:, None])
        hit = is_hard & (hard_value != 0)
        diff = torch.where(hit, torch.full_like(d, -nw), terms)
        count = hit.any(dim=1, keepdim=True)
    else:
        violate = ~target & (d_y + cfg["margin"] > d)
        diff = torch.where(target, terms, torch.where(violate, torch.full_like(d, -nw), _zero(d)))
        count = violate.any(dim=1, keepdim=True)
    if cfg["add_center_loss"]:
        count = torch.ones_like(count)
    diff = torch.where(target & count, torch.full_like(d, pw), diff)
    if cfg["positive_first"]:
        first = d_y > cfg["positive_upper_bound"]
        diff = torch.where(first, torch.where(target, torch.full_like(d, pw), _zero(d)), diff)
    return diff


class _GeneralTripletFunction(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: Any, x: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor | None,
        cfg: dict,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        d, lab, target = _rows(x.detach(), labels)
        num, dim = d.shape
        terms, hardest = triplet_forward(d, lab, target, cfg)
        ctx.save_for_backward(d, lab, target, terms, hardest)
        ctx.cfg, ctx.shape, ctx.weights = cfg, x.shape, weights
        pos = d.gather(1, lab[:, None]).sum()
        neg = torch.where(target, _zero(d), d).sum()
        distances = torch.stack([pos / num, neg / num / max(dim - 1, 1)])
        ctx.mark_non_differentiable(distances)
        return terms.abs().sum() / num, distances

    @staticmethod
    def backward(
        ctx: Any, grad: torch.Tensor, _grad_distances: torch.Tensor | None
    ) -> tuple[torch.Tensor | None, ...]:
        d, lab, target, terms, hardest = ctx.saved_tensors
        diff = triplet_backward(d, lab, target, ctx.cfg, terms, hardest)
        if ctx.weights is not None:
            diff = diff * ctx.weights.detach().reshape(d.shape[0], 1)
        return (diff * (grad / d.shape[0])).reshape(ctx.shape), None, None, None


TRIPLET_FIELDS = ("margin", "add_center_loss", "hardest_only", "positive_first",
                  "positive_upper_bound", "positive_weight", "negative_weight")


class CaffeGeneralTripletLoss(nn.Module):
    def __init__(self, cfg: dict, num_tops: int) -> None:
        super().__init__()
        self.cfg = cfg
        self.num_tops = num_tops

    def forward(self, x: torch.Tensor, labels: torch.Tensor, *weights: torch.Tensor) -> Any:
        if x.device.type == "meta":
            loss, distances = x.new_empty(()), x.new_empty((2,))
        else:
            w = weights[0] if weights else None
            loss, distances = _GeneralTripletFunction.apply(x, labels, w, self.cfg)
        return loss if self.num_tops == 1 else (loss, distances)


@register_layer(
    "GeneralTripletLoss", param="general_triplet_loss_param", bottoms=(2, 3), tops=(1, 2),
    loss=True,
)
def build_general_triplet_loss(ctx: BuildContext) -> nn.Module:
    p = ctx.param
    _check_distances(ctx)
    cfg = {name: getattr(p, name) for name in TRIPLET_FIELDS}
    cfg = {k: (bool(v) if isinstance(v, bool) else float(f32(v))) for k, v in cfg.items()}
    return CaffeGeneralTripletLoss(cfg, ctx.num_tops)


# ----------------------------------------------------------------------------- standalone source
# convert's emitters for the module classes above (caffe2torch.layers.emit)


@emitter(CaffeInnerDistance)
def _emit_inner_distance(e: Emit) -> list[str]:
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
