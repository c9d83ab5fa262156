"""SSD's ``MultiBoxLoss`` (weiliu89/caffe, branch ssd: multibox_loss_layer.cpp and the
matching, mining and encoding of util/bbox_util.cpp), with the fork's CPU numerics.

Bottoms: location predictions (N, P * L * 4) (L = 1 with ``share_location``, else
num_classes), confidences (N, P * C), the priors (1, 2, P * 4: boxes, then variances) and the
ground truth (..., K, 8) rows [item, label, instance, xmin, ymin, xmax, ymax, difficult].

* GetGroundTruth: rows of item -1 are skipped, a background label is an error, difficult
  boxes are dropped unless ``use_difficult_gt``.
* FindMatches / MatchBBox: Jaccard overlap (float) of the priors (``use_prior_for_matching``)
  or of the decoded predictions against the boxes; overlaps <= 1e-6 do not count. Bipartite
  first (repeatedly the largest remaining overlap, first prediction then first box on ties),
  then with PER_PREDICTION every unmatched prediction takes its best box of overlap >=
  ``overlap_threshold``. ``ignore_cross_boundary_bbox`` marks predictions outside [0, 1]
  as ignored (-2): never positive, never mined.
* MineHardExamples: MAX_NEGATIVE ranks the unmatched predictions of overlap < ``neg_overlap``
  by their confidence loss (float) and keeps int(num_pos * neg_pos_ratio) per image;
  HARD_EXAMPLE ranks every prediction by confidence plus localisation loss and keeps
  ``sample_size`` (positives not kept stop being positives). Equal losses keep prior order
  (the fork's std::sort leaves it unspecified). Images without a box add nothing. With
  ``nms_param`` (nms_threshold > 0) the candidates first go through the fork's greedy NMS
  (ApplyNMS) on the priors (``use_prior_for_nms``) or the decoded predictions, by loss.
* EncodeLocPrediction / EncodeBBox (CORNER, CENTER_SIZE, CORNER_SIZE; the log in double as
  the C++ calls ::log); ``bp_inside`` replaces coordinates whose box is outside [0, 1] by
  the target; ``encode_variance_in_target`` divides prediction and target by the variance.
* Losses: SmoothL1 (sum of 0.5 d^2 or |d| - 0.5) or L2 (sum d^2 / 2) over the positives,
  times ``loc_weight``; SOFTMAX (SoftmaxWithLoss, sum of -log max(p, FLT_MIN)) or LOGISTIC
  (SigmoidCrossEntropyLoss, sum) over the mined rows, or over every prediction with
  mining_type NONE. Both are divided by the normalizer (LossLayer::GetNormalizer with the
  number of positives as the valid count, never below 1). A term whose bottom has
  ``propagate_down: false`` is left out of the loss, as the fork does.
* Gradients are the fork's: to the location and confidence predictions only. With
  ``encode_variance_in_target`` the fork copies the gradient of pred / variance back
  unscaled; that is reproduced.
* The fork's quirks kept: LOGISTIC targets start at the value background_label_id (not 0);
  with LOGISTIC and no mining the targets of image i start num_priors (not num_priors *
  num_classes) entries after image i - 1's.

Refused as the fork refuses it: mining without ``share_location``. A ground-truth label
outside [0, num_classes) is a DataError here (the fork would index past its rows). Matching
and mining run on CPU copies, as the fork's CPU path does; the losses stay on the
predictions' device. With shared locations (every SSD TRAIN net) the batch goes through at
once: the overlaps as an (N, P, G) tensor with the boxes padded to the most an image has,
one bipartite round for all images, the confidence loss of all N * P priors, mining as one
stable sort per row; the positives and negatives are then taken image by image in prior
order, as the fork's loops take them, so every sum adds in the same order as there.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from caffe2torch.errors import DataError
from caffe2torch.layers.bvlc.losses import (
    BATCH_SIZE,
    FLT_MIN,
    NONE,
    _SigmoidCrossEntropyFunction,
    _SoftmaxLossFunction,
    normalization_mode,
)
from caffe2torch.layers.registry import BuildContext, register_layer
from caffe2torch.numerics import f32
from caffe2torch.proto import caffe_pb2

MB = caffe_pb2.MultiBoxLossParameter
CORNER = caffe_pb2.PriorBoxParameter.CORNER
CENTER_SIZE = caffe_pb2.PriorBoxParameter.CENTER_SIZE
CORNER_SIZE = caffe_pb2.PriorBoxParameter.CORNER_SIZE
FULL = caffe_pb2.LossParameter.FULL
VALID = caffe_pb2.LossParameter.VALID


@dataclass(frozen=True)
class MultiBoxSpec:
    """The settings of one MultiBoxLoss layer, as the fork's LayerSetUp reads them."""

    num_classes: int
    share_location: bool = True
    background: int = 0
    match_type: int = MB.PER_PREDICTION
    overlap_threshold: float = 0.5
    use_prior_for_matching: bool = True
    use_difficult_gt: bool = True
    ignore_cross_boundary: bool = False
    code_type: int = CORNER
    variance_in_target: bool = False
    bp_inside: bool = False
    map_object_to_agnostic: bool = False
    mining: int = MB.MAX_NEGATIVE
    neg_pos_ratio: float = 3.0
    neg_overlap: float = 0.5
    sample_size: int = 64
    nms_threshold: float = 0.0  # 0: no NMS among the mined examples (no nms_param)
    nms_top_k: int = 0
    use_prior_for_nms: bool = False
    loc_loss: int = MB.SMOOTH_L1
    conf_loss: int = MB.SOFTMAX
    loc_weight: float = 1.0
    normalization: int = VALID
    use_loc: bool = True  # propagate_down[0]
    use_conf: bool = True  # propagate_down[1]

    @property
    def loc_classes(self) -> int:
        return 1 if self.share_location else self.num_classes


# ------------------------------------------------------------------------------ boxes


def bbox_size(b: torch.Tensor) -> torch.Tensor:
    """BBoxSize (normalized): width * height, 0 for an inverted box."""
    w = b[..., 2] - b[..., 0]
    h = b[..., 3] - b[..., 1]
    bad = (b[..., 2] < b[..., 0]) | (b[..., 3] < b[..., 1])
    return torch.where(bad, torch.zeros_like(w), w * h)


def jaccard(a: torch.Tensor, a_size: torch.Tensor, b: torch.Tensor,
            b_size: torch.Tensor) -> torch.Tensor:
    """JaccardOverlap (normalized) of every (..., P, 4) box against every (..., G, 4) box:
    (..., P, G)."""
    a, b = a[..., :, None, :], b[..., None, :, :]
    x0 = torch.maximum(a[..., 0], b[..., 0])
    y0 = torch.maximum(a[..., 1], b[..., 1])
    x1 = torch.minimum(a[..., 2], b[..., 2])
    y1 = torch.minimum(a[..., 3], b[..., 3])
    iw, ih = x1 - x0, y1 - y0
    inter = iw * ih
    iou = inter / ((a_size[..., :, None] + b_size[..., None, :]) - inter)
    return torch.where((iw > 0) & (ih > 0), iou, 0.0)


def cross_boundary(b: torch.Tensor) -> torch.Tensor:
    """IsCrossBoundaryBBox: a coordinate outside [0, 1]."""
    return ((b < 0) | (b > 1)).any(dim=-1)


def match_boxes(overlaps: torch.Tensor, ignored: torch.Tensor | None, match_type: int,
                threshold: float) -> tuple[torch.Tensor, torch.Tensor]:
    """MatchBBox on a (P, G) overlap matrix: (the matched column or -1, -2 for ``ignored``
    predictions; the overlap kept per prediction)."""
    num_pred, num_gt = overlaps.shape
    if num_gt == 0:  # MatchBBox returns before marking cross-boundary predictions
        return (torch.full((num_pred,), -1, dtype=torch.long),
                torch.zeros(num_pred, dtype=overlaps.dtype))
    index, best = match_batch(overlaps[None], torch.ones(1, num_gt, dtype=torch.bool),
                              None if ignored is None else ignored[None], match_type,
                              threshold)
    return index[0], best[0]


def match_batch(overlaps: torch.Tensor, columns: torch.Tensor, ignored: torch.Tensor | None,
                match_type: int, threshold: float) -> tuple[torch.Tensor, torch.Tensor]:
    """MatchBBox of every image at once: ``overlaps`` (N, P, G) with the boxes of image n
    in the columns where ``columns`` (N, G) is true (the rest is padding); ``ignored``
    (N, P) or None. An image without a column keeps -1 and overlap 0 everywhere."""
    num, num_pred, num_gt = overlaps.shape
    index = torch.full((num, num_pred), -1, dtype=torch.long)
    if num_gt == 0:
        return index, torch.zeros(num, num_pred, dtype=overlaps.dtype)
    present = (overlaps > 1e-6) & columns[:, None, :]
    if ignored is not None:
        ignored = ignored & columns.any(dim=1)[:, None]
        index[ignored] = -2
        present &= ~ignored[:, :, None]
    best = torch.where(present, overlaps, 0.0).amax(dim=2)
    # bipartite: per image the largest overlap left, row-major first on ties (argmax gives
    # the first maximum); a matched row and column leave the pool
    work = torch.where(present, overlaps, -1.0)
    rows = torch.arange(num)
    for _ in range(num_gt):
        flat = work.reshape(num, -1).argmax(dim=1)
        top = work.reshape(num, -1).gather(1, flat[:, None]).squeeze(1)
        live = top > -1
        if not bool(live.any()):
            break
        n, flat = rows[live], flat[live]
        i, j = flat // num_gt, flat % num_gt
        index[n, i] = j
        best[n, i] = overlaps[n, i, j]
        work[n, i, :] = -1
        work[n, :, j] = -1
    if match_type == MB.PER_PREDICTION:
        cand = present & (overlaps >= threshold) & (index == -1)[:, :, None]
        hit = cand.any(dim=2)
        col = torch.where(cand, overlaps, -1.0).argmax(dim=2)
        index = torch.where(hit, col, index)
        best = torch.where(hit, overlaps.gather(2, col[:, :, None]).squeeze(2), best)
    return index, best


def _log_f64(x: torch.Tensor) -> torch.Tensor:
    return torch.log(x.double())


def encode_boxes(gt: torch.Tensor, prior: torch.Tensor, var: torch.Tensor, code: int,
                 in_target: bool) -> torch.Tensor:
    """EncodeBBox of (M, 4) float32 boxes against their priors and variances."""
    if code == CORNER:
        d = gt - prior
        return d if in_target else d / var
    pw = prior[:, 2] - prior[:, 0]
    ph = prior[:, 3] - prior[:, 1]
    if not (bool((pw > 0).all()) and bool((ph > 0).all())):
        raise DataError("MultiBoxLoss: a prior box has no positive width and height")
    if code == CORNER_SIZE:
        size = torch.stack([pw, ph, pw, ph], dim=1)
        d = (gt - prior) / size
        return d if in_target else d / var
    bw = gt[:, 2] - gt[:, 0]
    bh = gt[:, 3] - gt[:, 1]
    if not (bool((bw > 0).all()) and bool((bh > 0).all())):
        raise DataError("MultiBoxLoss: a matched ground-truth box has no positive width and "
                        "height (the fork stops on CHECK_GT(bbox_width, 0))",
                        hint="drop empty boxes from the label rows")
    pcx, pcy = (prior[:, 0] + prior[:, 2]) / 2, (prior[:, 1] + prior[:, 3]) / 2
    bcx, bcy = (gt[:, 0] + gt[:, 2]) / 2, (gt[:, 1] + gt[:, 3]) / 2
    if in_target:
        cols = [(bcx - pcx) / pw, (bcy - pcy) / ph,
                _log_f64(bw / pw).float(), _log_f64(bh / ph).float()]
    else:
        cols = [(bcx - pcx) / pw / var[:, 0], (bcy - pcy) / ph / var[:, 1],
                (_log_f64(bw / pw) / var[:, 2].double()).float(),
                (_log_f64(bh / ph) / var[:, 3].double()).float()]
    return torch.stack(cols, dim=1)


def decode_boxes(loc: torch.Tensor, prior: torch.Tensor, var: torch.Tensor, code: int,
                 in_target: bool) -> torch.Tensor:
    """DecodeBBox of (P, 4) float32 predictions (for matching on predictions)."""
    v = torch.ones_like(var) if in_target else var
    if code == CORNER:
        return prior + v * loc
    pw = prior[:, 2] - prior[:, 0]
    ph = prior[:, 3] - prior[:, 1]
    if code == CORNER_SIZE:
        size = torch.stack([pw, ph, pw, ph], dim=1)
        return prior + v * loc * size
    pcx, pcy = (prior[:, 0] + prior[:, 2]) / 2, (prior[:, 1] + prior[:, 3]) / 2
    cx = (v[:, 0] * loc[:, 0] * pw + pcx).double()
    cy = (v[:, 1] * loc[:, 1] * ph + pcy).double()
    w = (torch.exp((v[:, 2] * loc[:, 2]).double()) * pw.double()).float().double()
    h = (torch.exp((v[:, 3] * loc[:, 3]).double()) * ph.double()).float().double()
    return torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], dim=1).float()


# ------------------------------------------------------------------------ ground truth


@dataclass
class _Truth:
    boxes: torch.Tensor  # (G, 4) float32
    labels: list[int]
    sizes: torch.Tensor  # (G,)


def ground_truth(gt: torch.Tensor, spec: MultiBoxSpec) -> dict[int, _Truth]:
    """GetGroundTruth: the boxes of each item, in row order."""
    if gt.numel() % 8:
        raise DataError(f"MultiBoxLoss: the label blob has {gt.numel()} values, not rows of 8 "
                        "[item, label, instance, xmin, ymin, xmax, ymax, difficult]")
    rows = gt.detach().reshape(-1, 8).float().cpu()
    by_item: dict[int, list[int]] = {}
    labels: dict[int, list[int]] = {}
    for r, row in enumerate(rows.tolist()):
        item = int(row[0])  # static_cast<int>
        if item == -1:
            continue
        label = int(row[1])
        if label == spec.background:
            raise DataError(f"MultiBoxLoss: ground-truth row {r} has the background label "
                            f"{label} (the fork stops: 'Found background label in the "
                            "dataset')")
        if not spec.use_difficult_gt and bool(row[7]):
            continue
        free = spec.map_object_to_agnostic and spec.mining == MB.NONE and spec.share_location
        if label < 0 or (label >= spec.num_classes and not free):
            raise DataError(f"MultiBoxLoss: ground-truth row {r} has label {label}, outside "
                            f"[0, num_classes = {spec.num_classes})")
        by_item.setdefault(item, []).append(r)
        labels.setdefault(item, []).append(label)
    out = {}
    for item, idx in by_item.items():
        boxes = rows[idx, 3:7].contiguous()
        out[item] = _Truth(boxes, labels[item], bbox_size(boxes))
    return out


# ---------------------------------------------------------------------------- matching


def find_matches(loc: torch.Tensor, priors: torch.Tensor, var: torch.Tensor,
                 truth: dict[int, _Truth], spec: MultiBoxSpec
                 ) -> list[list[tuple[int, torch.Tensor, torch.Tensor]]]:
    """FindMatches: per image, [(location slot, match index (P,), match overlap (P,))] in
    the order of the fork's map (label -1 for shared locations, else ascending class)."""
    num, num_priors = loc.shape[0], priors.shape[0]
    psize = bbox_size(priors)
    out: list[list[tuple[int, torch.Tensor, torch.Tensor]]] = []
    preds = loc.detach().float().cpu().reshape(num, num_priors, spec.loc_classes, 4)
    for i in range(num):
        t = truth.get(i)
        if t is None:
            out.append([])
            continue
        entries: list[tuple[int, torch.Tensor, torch.Tensor]] = []
        if spec.use_prior_for_matching:
            ov = jaccard(priors, psize, t.boxes, t.sizes)
            ign = cross_boundary(priors) if spec.ignore_cross_boundary else None
            index, best = match_boxes(ov, ign, spec.match_type, spec.overlap_threshold)
            if spec.share_location:
                entries.append((0, index, best))
            else:
                lab = torch.tensor(t.labels, dtype=torch.long)
                safe = index.clamp(min=0)
                for c in range(spec.loc_classes):
                    if c == spec.background:
                        continue
                    keep = (index > -1) & (lab[safe] == c)
                    entries.append((c, torch.where(keep, index, torch.full_like(index, -1)),
                                    best))
        else:
            for c in range(spec.loc_classes):
                if not spec.share_location and c == spec.background:
                    continue
                boxes = decode_boxes(preds[i, :, c], priors, var, spec.code_type,
                                     spec.variance_in_target)
                cols = [g for g, lb in enumerate(t.labels) if spec.share_location or lb == c]
                sel = torch.tensor(cols, dtype=torch.long)
                ov = jaccard(boxes, bbox_size(boxes), t.boxes[sel], t.sizes[sel])
                ign = cross_boundary(boxes) if spec.ignore_cross_boundary else None
                index, best = match_boxes(ov, ign, spec.match_type, spec.overlap_threshold)
                index = torch.where(index > -1, sel[index.clamp(min=0)] if cols else index,
                                    index)
                entries.append((c, index, best))
        out.append(entries)
    return out


# ------------------------------------------------------------------------- the losses


def _encoded_pairs(loc: torch.Tensor, priors: torch.Tensor, var: torch.Tensor,
                   truth: _Truth, slot: int, index: torch.Tensor, spec: MultiBoxSpec
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """EncodeLocPrediction for one image and slot: (predictions (M, 4) with autograd,
    targets (M, 4)) of the positives in prior order. ``loc`` is (P, L, 4)."""
    js = torch.nonzero(index > -1).squeeze(1)
    target = encode_boxes(truth.boxes[index[js]], priors[js], var[js], spec.code_type,
                          spec.variance_in_target).to(loc)
    pred = loc[js.to(loc.device), slot]
    if spec.bp_inside:
        match = priors[js]
        if not spec.use_prior_for_matching:
            match = decode_boxes(pred.detach().float().cpu(), priors[js], var[js],
                                 spec.code_type, spec.variance_in_target)
        pred = torch.where(((match < 0) | (match > 1)).to(loc.device), target, pred)
    if spec.variance_in_target:
        v = var[js].to(loc)
        # the fork divides both by the variance and copies d loss / d(pred / v) back
        pred = pred.detach() / v + (pred - pred.detach())
        target = target / v
    return pred, target


def _loc_terms(diff: torch.Tensor, loss_type: int) -> torch.Tensor:
    if loss_type == MB.SMOOTH_L1:
        a = diff.abs()
        return torch.where(a < 1, 0.5 * diff * diff, a - 0.5)
    return 0.5 * diff * diff


def _prior_conf_loss(conf: torch.Tensor, labels: torch.Tensor, loss_type: int) -> torch.Tensor:
    """ComputeConfLoss: the confidence loss of each (P, C) row for its label (float)."""
    x = conf.detach().float().cpu()
    if loss_type == MB.SOFTMAX:
        e = torch.exp(x - x.amax(dim=1, keepdim=True))
        prob = e.gather(1, labels[:, None]).squeeze(1) / e.sum(dim=1)
        return -torch.log(torch.clamp(prob, min=FLT_MIN))
    t = torch.zeros_like(x)
    ok = labels < x.shape[1]
    t[ok.nonzero().squeeze(1), labels[ok]] = 1
    pos = (x >= 0).float()
    return -(x * (t - pos) - torch.log(1 + torch.exp(x - 2 * x * pos))).sum(dim=1)


def nms_keep(boxes: torch.Tensor, scores: torch.Tensor, threshold: float,
             top_k: int) -> list[int]:
    """ApplyNMS (bbox_util.cpp, the greedy one mining uses): the rows of ``boxes`` kept, in
    the order kept. Scores sorted stably, cut to ``top_k`` (-1: all; the proto's default 0
    keeps none); boxes of size < 1e-5 are dropped; a box goes when its overlap with a kept
    one is > ``threshold``; stops after ``top_k`` kept."""
    sizes = bbox_size(boxes)
    overlap = jaccard(boxes, sizes, boxes, sizes)
    order = torch.sort(scores, descending=True, stable=True).indices.tolist()
    if top_k > -1:
        order = order[:top_k]
    small = (sizes < 1e-5).tolist()
    kept: list[int] = []
    while order:
        best = order.pop(0)
        if small[best]:
            continue
        kept.append(best)
        if -1 < top_k <= len(kept):
            break
        order = [k for k in order if not small[k] and not bool(overlap[best, k] > threshold)]
    return kept


def normalizer(mode: int, num: int, num_priors: int, num_matches: int) -> float:
    """LossLayer::GetNormalizer with the positives as the valid count, never below 1."""
    if mode == FULL:
        value = num * num_priors
    elif mode == VALID:
        value = num_matches
    elif mode == BATCH_SIZE:
        value = num
    else:
        value = 1
    return float(max(1, value))


def multibox_loss(loc: torch.Tensor, conf: torch.Tensor, prior: torch.Tensor,
                  gt: torch.Tensor, spec: MultiBoxSpec) -> torch.Tensor:
    """MultiBoxLossLayer::Forward_cpu; autograd gives the fork's Backward_cpu."""
    num = loc.shape[0]
    num_priors = prior.numel() // 8
    flat = prior.detach().float().cpu().reshape(-1)  # matching runs on the CPU, as the fork's
    priors = flat[: num_priors * 4].reshape(num_priors, 4)
    var = flat[num_priors * 4: num_priors * 8].reshape(num_priors, 4)
    truth = ground_truth(gt, spec)
    if spec.share_location:
        return _shared_loss(loc, conf, priors, var, truth, spec)
    if spec.mining != MB.NONE:
        raise DataError("MultiBoxLoss: mining needs share_location: true (the fork: "
                        "'Currently only support negative mining if share_location is true')")
    matches = find_matches(loc, priors, var, truth, spec)
    locs = loc.reshape(num, num_priors, spec.loc_classes, 4)
    confs = conf.reshape(num, num_priors, spec.num_classes)
    preds, targets = [], []
    for i, entries in enumerate(matches):
        for slot, index, _ in entries:
            if bool((index > -1).any()):
                p, t = _encoded_pairs(locs[i], priors, var, truth[i], slot, index, spec)
                preds.append(p)
                targets.append(t)
    num_matches = sum(int(p.shape[0]) for p in preds)
    diff = torch.cat(preds) - torch.cat(targets) if num_matches else None
    conf_sum = _conf_sum(confs, matches, truth, spec) if spec.use_conf else None
    return _total(loc, conf, diff, conf_sum, num_matches, spec)


def _total(loc: torch.Tensor, conf: torch.Tensor, diff: torch.Tensor | None,
           conf_sum: torch.Tensor | None, num_matches: int, spec: MultiBoxSpec
           ) -> torch.Tensor:
    """The location term over the positives' ``diff`` (prediction - target) plus the summed
    confidence loss, both divided by the normalizer."""
    norm = normalizer(spec.normalization, loc.shape[0], conf.shape[1] // spec.num_classes,
                      num_matches)
    # an empty sum: 0 that still reaches both bottoms, so a batch with nothing to score
    # backpropagates zeros (the fork's caffe_set of the diffs) instead of failing
    total = loc.reshape(-1)[:0].sum() + conf.reshape(-1)[:0].sum().to(loc.dtype)
    if spec.use_loc and diff is not None:
        total = total + spec.loc_weight * _loc_terms(diff, spec.loc_loss).sum() / norm
    if conf_sum is not None:
        total = total + conf_sum / norm
    return total


# ------------------------------------------------ shared locations: the batch at once


@dataclass
class _Padded:
    """The ground truth of a batch, padded to the most boxes an image has (at least 1)."""

    boxes: torch.Tensor  # (N, G, 4)
    sizes: torch.Tensor  # (N, G)
    labels: torch.Tensor  # (N, G) long, the background label in the padding
    columns: torch.Tensor  # (N, G) bool: a real box


def _pad_truth(truth: dict[int, _Truth], num: int, background: int) -> _Padded:
    # at least one (padding) column, so that the gathers below have a column to read
    width = max((len(truth[i].labels) for i in range(num) if i in truth), default=1)
    out = _Padded(torch.zeros(num, width, 4), torch.zeros(num, width),
                  torch.full((num, width), background, dtype=torch.long),
                  torch.zeros(num, width, dtype=torch.bool))
    items = [i for i in range(num) if i in truth]
    if items:  # box k of image i goes to column k of row i
        count = torch.tensor([len(truth[i].labels) for i in items])
        n = torch.repeat_interleave(torch.tensor(items), count)
        g = torch.arange(int(count.sum())) - torch.repeat_interleave(count.cumsum(0) - count,
                                                                      count)
        out.boxes[n, g] = torch.cat([truth[i].boxes for i in items])
        out.sizes[n, g] = torch.cat([truth[i].sizes for i in items])
        out.labels[n, g] = torch.tensor([lb for i in items for lb in truth[i].labels])
        out.columns[n, g] = True
    return out


def _shared_loss(loc: torch.Tensor, conf: torch.Tensor, priors: torch.Tensor,
                 var: torch.Tensor, truth: dict[int, _Truth], spec: MultiBoxSpec
                 ) -> torch.Tensor:
    """The loss with one location per prior (``share_location``): FindMatches, mining and
    the encodings on (N, P) tensors of the whole batch. Rows are taken image by image in
    prior order, the order of the fork's loops, so the sums add in the same order."""
    num, num_priors, nc = loc.shape[0], priors.shape[0], spec.num_classes
    pad = _pad_truth(truth, num, spec.background)
    has = pad.columns.any(dim=1)  # images with a box: the others add nothing
    locs = loc.reshape(num * num_priors, 1, 4)
    all_priors, all_var = priors.repeat(num, 1), var.repeat(num, 1)
    if spec.use_prior_for_matching:
        boxes = priors.expand(num, num_priors, 4)
        sizes = bbox_size(priors).expand(num, num_priors)
    else:
        boxes = decode_boxes(locs[:, 0].detach().float().cpu(), all_priors, all_var,
                             spec.code_type, spec.variance_in_target
                             ).reshape(num, num_priors, 4)
        sizes = bbox_size(boxes)
    overlaps = jaccard(boxes, sizes, pad.boxes, pad.sizes)
    ignored = cross_boundary(boxes) if spec.ignore_cross_boundary else None
    index, best = match_batch(overlaps, pad.columns, ignored, spec.match_type,
                              spec.overlap_threshold)
    offset = torch.arange(num)[:, None] * pad.boxes.shape[1]
    flat_truth = _Truth(pad.boxes.reshape(-1, 4), [], pad.sizes.reshape(-1))

    def positives(index: torch.Tensor) -> torch.Tensor:  # (N * P,) rows of the flat truth
        return torch.where(index > -1, index + offset, index).reshape(-1)

    negatives = torch.zeros(num, num_priors, dtype=torch.bool)
    if spec.mining != MB.NONE:
        loc_loss = torch.zeros(num * num_priors)
        rows = positives(index)
        if spec.mining == MB.HARD_EXAMPLE and bool((rows > -1).any()):
            pred, target = _encoded_pairs(locs.detach(), all_priors, all_var, flat_truth, 0,
                                          rows, spec)
            terms = _loc_terms((pred - target).float(), spec.loc_loss).sum(dim=1)
            loc_loss[torch.nonzero(rows > -1).squeeze(1)] = terms.cpu()
        labels = torch.where(index > -1, pad.labels.gather(1, index.clamp(min=0)),
                             spec.background)
        loss = _prior_conf_loss(conf.reshape(num * num_priors, nc), labels.reshape(-1),
                                spec.conf_loss) + loc_loss
        index, negatives = _mine(loss.reshape(num, num_priors), locs, all_priors, all_var,
                                 index, best, has, spec)
    rows = positives(index)
    num_matches = int((rows > -1).sum())
    diff = None
    if num_matches:
        pred, target = _encoded_pairs(locs, all_priors, all_var, flat_truth, 0, rows, spec)
        diff = pred - target
    conf_sum = None
    if spec.use_conf:
        conf_sum = _shared_conf_sum(conf.reshape(num, num_priors, nc), index, negatives,
                                    pad.labels, spec)
    return _total(loc, conf, diff, conf_sum, num_matches, spec)


def _mine(loss: torch.Tensor, locs: torch.Tensor, priors: torch.Tensor, var: torch.Tensor,
          index: torch.Tensor, best: torch.Tensor, has: torch.Tensor, spec: MultiBoxSpec
          ) -> tuple[torch.Tensor, torch.Tensor]:
    """MineHardExamples of every image with a box, by ``loss`` (N, P): (match index after
    mining, the mined negatives (N, P) bool). ``locs``, ``priors``, ``var``: the (N * P)
    rows the NMS among the candidates decodes."""
    num, num_priors = loss.shape
    pos = index > -1
    if spec.mining == MB.MAX_NEGATIVE:
        eligible = (index == -1) & (best < spec.neg_overlap)
        want = [int(f32(n) * f32(spec.neg_pos_ratio)) for n in pos.sum(dim=1).tolist()]
    else:  # HARD_EXAMPLE: every prediction
        eligible = torch.ones_like(pos)
        want = [spec.sample_size] * num
    eligible &= has[:, None]
    count = eligible.sum(dim=1).tolist()
    num_sel = torch.tensor([min(w, c) for w, c in zip(want, count)], dtype=torch.long)
    chosen = torch.zeros_like(pos)
    if spec.nms_threshold <= 0:
        # the largest losses first, equal ones in prior order (a stable sort); the
        # candidates' losses are >= 0, so the others (-inf) sort after them
        key = torch.where(eligible, loss, -torch.inf)
        order = torch.sort(key, dim=1, descending=True, stable=True).indices
        chosen.scatter_(1, order, torch.arange(num_priors)[None, :] < num_sel[:, None])
    else:
        nms_boxes = priors if spec.use_prior_for_nms else decode_boxes(
            locs[:, 0].detach().float().cpu(), priors, var, spec.code_type,
            spec.variance_in_target)
        nms_boxes = nms_boxes.reshape(num, num_priors, 4)
        for i in torch.nonzero(has).squeeze(1).tolist():
            cand = torch.nonzero(eligible[i]).squeeze(1)
            kept = nms_keep(nms_boxes[i, cand], loss[i, cand], spec.nms_threshold,
                            spec.nms_top_k)
            chosen[i, cand[torch.tensor(kept[: int(num_sel[i])], dtype=torch.long)]] = True
    if spec.mining == MB.HARD_EXAMPLE:
        index = torch.where(pos & ~chosen, -1, index)
    return index, (index == -1) & chosen & ~pos


def _shared_conf_sum(confs: torch.Tensor, index: torch.Tensor, negatives: torch.Tensor,
                     gt_labels: torch.Tensor, spec: MultiBoxSpec) -> torch.Tensor | None:
    """EncodeConfPrediction with shared locations, then the summed loss: with mining the
    positives then the negatives of each image, in prior order; without, every prior."""
    num, num_priors, nc = confs.shape
    bg = spec.background
    dev = confs.device
    pos = index > -1
    if spec.map_object_to_agnostic:
        labels = torch.full_like(index, bg + 1)
    else:
        labels = gt_labels.gather(1, index.clamp(min=0))
    labels = torch.where(pos, labels, bg)
    if spec.mining != MB.NONE:
        n, _, p = torch.nonzero(torch.stack([pos, negatives], dim=1), as_tuple=True)
        if not n.numel():
            return None
        return _scored(confs[n.to(dev), p.to(dev)], labels[n, p].to(dev), spec)
    if spec.conf_loss == MB.SOFTMAX:
        scores = confs.reshape(num * num_priors, nc)
        return _SoftmaxLossFunction.apply(scores, labels.reshape(-1).to(scores), None, 1,
                                          None, NONE, FLT_MIN)[0]
    target = torch.full((num * num_priors * nc,), float(bg), dtype=confs.dtype)  # CPU
    n, p = torch.nonzero(pos, as_tuple=True)
    # the fork's target pointer moves num_priors (not num_priors * nc) per image
    target[n * num_priors + p * nc + labels[n, p]] = 1
    scores = confs.reshape(1, num * num_priors, nc)
    return _SigmoidCrossEntropyFunction.apply(scores, target.reshape(scores.shape).to(dev),
                                              None, BATCH_SIZE)


def _scored(scores: torch.Tensor, lab: torch.Tensor, spec: MultiBoxSpec) -> torch.Tensor:
    """The summed SoftmaxWithLoss (normalization NONE) or SigmoidCrossEntropyLoss (one
    item) of the mined (M, C) rows for their labels."""
    if spec.conf_loss == MB.SOFTMAX:
        return _SoftmaxLossFunction.apply(scores, lab.to(scores.dtype), None, 1, None,
                                          NONE, FLT_MIN)[0]
    target = torch.full_like(scores.detach(), float(spec.background))
    hit = lab < scores.shape[1]  # a negative's 1 goes to the background column when it exists
    target[torch.nonzero(hit).squeeze(1), lab[hit]] = 1
    return _SigmoidCrossEntropyFunction.apply(scores[None], target[None], None, BATCH_SIZE)


def _gt_label(truth: _Truth, g: torch.Tensor, spec: MultiBoxSpec) -> torch.Tensor:
    if spec.map_object_to_agnostic:
        return torch.full_like(g, spec.background + 1)
    return torch.tensor(truth.labels, dtype=torch.long)[g]


def _conf_sum(confs: torch.Tensor, matches: list[list[tuple[int, torch.Tensor, torch.Tensor]]],
              truth: dict[int, _Truth], spec: MultiBoxSpec) -> torch.Tensor:
    """EncodeConfPrediction without mining (a location per class), then the summed
    SoftmaxWithLoss (normalization NONE) or SigmoidCrossEntropyLoss (one item)."""
    num, num_priors, nc = confs.shape
    bg = spec.background
    dev = confs.device
    if spec.conf_loss == MB.SOFTMAX:
        lab = torch.full((num, num_priors), bg, dtype=torch.long)
        for i, entries in enumerate(matches):
            for _, index, _ in entries:  # later classes overwrite, as the fork's loop does
                js = torch.nonzero(index > -1).squeeze(1)
                lab[i, js] = _gt_label(truth[i], index[js], spec)
        scores = confs.reshape(num * num_priors, nc)
        return _SoftmaxLossFunction.apply(scores, lab.reshape(-1).to(scores), None, 1,
                                          None, NONE, FLT_MIN)[0]
    target = torch.full((num * num_priors * nc,), float(bg), dtype=confs.dtype)  # CPU
    for i, entries in enumerate(matches):
        for _, index, _ in entries:
            js = torch.nonzero(index > -1).squeeze(1)
            # the fork's target pointer moves num_priors (not num_priors * nc) per image
            target[i * num_priors + js * nc + _gt_label(truth[i], index[js], spec)] = 1
    scores = confs.reshape(1, num * num_priors, nc)
    return _SigmoidCrossEntropyFunction.apply(scores, target.reshape(scores.shape).to(dev),
                                              None, BATCH_SIZE)


# ---------------------------------------------------------------------------- the layer


class CaffeMultiBoxLoss(nn.Module):
    """SSD's MultiBoxLoss (see the module doc): a scalar loss."""

    def __init__(self, spec: MultiBoxSpec) -> None:
        super().__init__()
        self.spec = spec

    def forward(self, loc: torch.Tensor, conf: torch.Tensor, prior: torch.Tensor,
                gt: torch.Tensor) -> torch.Tensor:
        return multibox_loss(loc, conf, prior.detach(), gt.detach(), self.spec)

    def infer_shapes(self, shapes: list[tuple[int, ...]]) -> list[tuple[int, ...]]:
        return [()]  # ir.shapes: the scalar loss (the forward needs real ground truth)

    def extra_repr(self) -> str:
        s = self.spec
        return (f"num_classes={s.num_classes}, mining={MB.MiningType.Name(s.mining)}, "
                f"conf={MB.ConfLossType.Name(s.conf_loss)}")


def read_spec(ctx: BuildContext) -> MultiBoxSpec:
    """LayerSetUp's reading and checks, plus refusals of what is not implemented."""
    p = ctx.layer.multibox_loss_param
    if not p.HasField("num_classes"):
        raise ctx.error("multibox_loss_param.num_classes is required (the fork: 'Must "
                        "provide num_classes.')", hint="set num_classes, background included")
    if p.num_classes < 1:
        raise ctx.error(f"multibox_loss_param.num_classes must be >= 1, got {p.num_classes}")
    mining = int(p.mining_type)
    if p.HasField("do_neg_mining") and bool(p.do_neg_mining) != (mining != MB.NONE):
        raise ctx.error(
            f"multibox_loss_param.do_neg_mining: {str(p.do_neg_mining).lower()} contradicts "
            f"mining_type: {MB.MiningType.Name(mining)} (the fork checks they agree)",
            hint="drop the deprecated do_neg_mining and set mining_type")
    if mining != MB.NONE and not p.share_location:
        raise ctx.error("multibox_loss_param: mining needs share_location: true (the fork: "
                        "'Currently only support negative mining if share_location is true')")
    if mining == MB.HARD_EXAMPLE and p.sample_size <= 0:
        raise ctx.error(f"multibox_loss_param.sample_size must be > 0 for HARD_EXAMPLE, got "
                        f"{p.sample_size}")
    bg = int(p.background_label_id)
    if p.conf_loss_type == MB.SOFTMAX and bg >= p.num_classes:
        raise ctx.error(f"multibox_loss_param.background_label_id {bg} must be within [0, "
                        f"num_classes = {p.num_classes}) for the SOFTMAX confidence loss")
    if p.map_object_to_agnostic and p.num_classes != 2:
        raise ctx.error("multibox_loss_param.map_object_to_agnostic needs num_classes: 2 "
                        f"(background and object), got {p.num_classes}")
    if p.code_type not in (CORNER, CENTER_SIZE, CORNER_SIZE):
        raise ctx.error(f"multibox_loss_param.code_type {p.code_type} is unknown")
    pd = list(ctx.layer.propagate_down)
    use = (pd[0], pd[1]) if len(pd) == 4 else (True, True)  # LayerSetUp's default
    return MultiBoxSpec(
        num_classes=int(p.num_classes), share_location=bool(p.share_location), background=bg,
        match_type=int(p.match_type), overlap_threshold=float(f32(p.overlap_threshold)),
        use_prior_for_matching=bool(p.use_prior_for_matching),
        use_difficult_gt=bool(p.use_difficult_gt),
        ignore_cross_boundary=bool(p.ignore_cross_boundary_bbox), code_type=int(p.code_type),
        variance_in_target=bool(p.encode_variance_in_target), bp_inside=bool(p.bp_inside),
        map_object_to_agnostic=bool(p.map_object_to_agnostic), mining=mining,
        neg_pos_ratio=float(f32(p.neg_pos_ratio)), neg_overlap=float(f32(p.neg_overlap)),
        sample_size=int(p.sample_size), loc_loss=int(p.loc_loss_type),
        nms_threshold=float(f32(p.nms_param.nms_threshold)) if p.HasField("nms_param") else 0.0,
        nms_top_k=int(p.nms_param.top_k), use_prior_for_nms=bool(p.use_prior_for_nms),
        conf_loss=int(p.conf_loss_type), loc_weight=float(f32(p.loc_weight)),
        normalization=normalization_mode(ctx.layer.loss_param), use_loc=bool(use[0]),
        use_conf=bool(use[1]),
    )


def check_bottoms(ctx: BuildContext, spec: MultiBoxSpec) -> None:
    """MultiBoxLossLayer::Reshape's checks on the bottoms' shapes."""
    from caffe2torch.ir.shapes import multibox_loss_problem

    problem = multibox_loss_problem(ctx.bottom_shapes[0], ctx.bottom_shapes[1],
                                    ctx.bottom_shapes[2], spec.num_classes,
                                    spec.share_location)
    if problem:
        raise ctx.error(problem)


@register_layer("MultiBoxLoss", param="multibox_loss_param", bottoms=4, tops=1, loss=True)
def build_multibox_loss(ctx: BuildContext) -> nn.Module:
    spec = read_spec(ctx)
    check_bottoms(ctx, spec)
    return CaffeMultiBoxLoss(spec)
