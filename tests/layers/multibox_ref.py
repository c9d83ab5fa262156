"""A deliberately plain, loop-by-loop NumPy reading of SSD's MultiBoxLossLayer (weiliu89/caffe,
branch ssd: multibox_loss_layer.cpp Forward_cpu / Backward_cpu and the bbox_util.cpp helpers
it calls), written from the C++ and independent of caffe2torch's tensor code. Boxes are
lists of float32 scalars as NormalizedBBox holds them; the gradients are the C++'s
hand-written ones for a top diff of 1."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

F = np.float32
FLT_MIN = float(np.finfo(np.float32).tiny)

BIPARTITE, PER_PREDICTION = 0, 1
NONE_MINING, MAX_NEGATIVE, HARD_EXAMPLE = 0, 1, 2
L2, SMOOTH_L1 = 0, 1
SOFTMAX, LOGISTIC = 0, 1
CORNER, CENTER_SIZE, CORNER_SIZE = 1, 2, 3
FULL, VALID, BATCH_SIZE, NONE_NORM = 0, 1, 2, 3


@dataclass
class Params:
    num_classes: int
    share_location: bool = True
    background: int = 0
    match_type: int = PER_PREDICTION
    overlap_threshold: float = 0.5
    use_prior_for_matching: bool = True
    use_difficult_gt: bool = True
    ignore_cross_boundary: bool = False
    code_type: int = CORNER
    variance_in_target: bool = False
    bp_inside: bool = False
    map_object_to_agnostic: bool = False
    mining: int = MAX_NEGATIVE
    neg_pos_ratio: float = 3.0
    neg_overlap: float = 0.5
    sample_size: int = 64
    nms_threshold: float = 0.0  # has_nms_param && nms_threshold > 0
    nms_top_k: int = 0
    use_prior_for_nms: bool = False
    loc_loss: int = SMOOTH_L1
    conf_loss: int = SOFTMAX
    loc_weight: float = 1.0
    normalization: int = VALID
    propagate: tuple[bool, bool] = (True, True)


@dataclass
class Box:
    xmin: F
    ymin: F
    xmax: F
    ymax: F
    label: int = -1
    size: F | None = None
    extra: dict = field(default_factory=dict)


def size_of(b: Box) -> F:
    if b.xmax < b.xmin or b.ymax < b.ymin:
        return F(0)
    if b.size is not None:
        return b.size
    return F(F(b.xmax - b.xmin) * F(b.ymax - b.ymin))


def jaccard(b1: Box, b2: Box) -> F:
    if b2.xmin > b1.xmax or b2.xmax < b1.xmin or b2.ymin > b1.ymax or b2.ymax < b1.ymin:
        ix0 = iy0 = ix1 = iy1 = F(0)
    else:
        ix0, iy0 = max(b1.xmin, b2.xmin), max(b1.ymin, b2.ymin)
        ix1, iy1 = min(b1.xmax, b2.xmax), min(b1.ymax, b2.ymax)
    w, h = F(ix1 - ix0), F(iy1 - iy0)
    if w > 0 and h > 0:
        inter = F(w * h)
        return F(inter / F(F(size_of(b1) + size_of(b2)) - inter))
    return F(0)


def cross_boundary(b: Box) -> bool:
    return any(v < 0 or v > 1 for v in (b.xmin, b.ymin, b.xmax, b.ymax))


def match_bbox(gts: list[Box], preds: list[Box], label: int, match_type: int, thr: F,
               ignore_cross: bool) -> tuple[list[int], list[F]]:
    n = len(preds)
    indices, ovs = [-1] * n, [F(0)] * n
    gt_indices = [g for g in range(len(gts)) if label == -1 or gts[g].label == label]
    if not gt_indices:
        return indices, ovs
    overlaps: dict[int, dict[int, F]] = {}
    for i in range(n):
        if ignore_cross and cross_boundary(preds[i]):
            indices[i] = -2
            continue
        for j in range(len(gt_indices)):
            o = jaccard(preds[i], gts[gt_indices[j]])
            if o > 1e-6:
                ovs[i] = max(ovs[i], o)
                overlaps.setdefault(i, {})[j] = o
    pool = list(range(len(gt_indices)))
    while pool:
        max_idx, max_gt, max_o = -1, -1, -1.0
        for i in sorted(overlaps):
            if indices[i] != -1:
                continue
            for j in pool:
                if j in overlaps[i] and overlaps[i][j] > max_o:
                    max_idx, max_gt, max_o = i, j, overlaps[i][j]
        if max_idx == -1:
            break
        indices[max_idx] = gt_indices[max_gt]
        ovs[max_idx] = F(max_o)
        pool.remove(max_gt)
    if match_type == PER_PREDICTION:
        for i in sorted(overlaps):
            if indices[i] != -1:
                continue
            best, best_o = -1, -1.0
            for j in range(len(gt_indices)):
                if j in overlaps[i]:
                    o = overlaps[i][j]
                    if o >= thr and o > best_o:
                        best, best_o = j, o
            if best != -1:
                indices[i] = gt_indices[best]
                ovs[i] = F(best_o)
    return indices, ovs


def encode(prior: Box, var: list[F], code: int, vit: bool, b: Box) -> list[F]:
    if code == CORNER:
        d = [F(b.xmin - prior.xmin), F(b.ymin - prior.ymin), F(b.xmax - prior.xmax),
             F(b.ymax - prior.ymax)]
        return d if vit else [F(d[k] / var[k]) for k in range(4)]
    pw, ph = F(prior.xmax - prior.xmin), F(prior.ymax - prior.ymin)
    assert pw > 0 and ph > 0
    if code == CORNER_SIZE:
        d = [F(F(b.xmin - prior.xmin) / pw), F(F(b.ymin - prior.ymin) / ph),
             F(F(b.xmax - prior.xmax) / pw), F(F(b.ymax - prior.ymax) / ph)]
        return d if vit else [F(d[k] / var[k]) for k in range(4)]
    pcx, pcy = F(F(prior.xmin + prior.xmax) / 2), F(F(prior.ymin + prior.ymax) / 2)
    bw, bh = F(b.xmax - b.xmin), F(b.ymax - b.ymin)
    assert bw > 0 and bh > 0
    bcx, bcy = F(F(b.xmin + b.xmax) / 2), F(F(b.ymin + b.ymax) / 2)
    lw, lh = math.log(float(F(bw / pw))), math.log(float(F(bh / ph)))  # ::log(double)
    if vit:
        return [F(F(bcx - pcx) / pw), F(F(bcy - pcy) / ph), F(lw), F(lh)]
    return [F(F(F(bcx - pcx) / pw) / var[0]), F(F(F(bcy - pcy) / ph) / var[1]),
            F(lw / float(var[2])), F(lh / float(var[3]))]


def decode(prior: Box, var: list[F], code: int, vit: bool, b: Box) -> Box:
    v = [F(1)] * 4 if vit else var
    if code == CORNER:
        out = [F(prior.xmin + F(v[0] * b.xmin)), F(prior.ymin + F(v[1] * b.ymin)),
               F(prior.xmax + F(v[2] * b.xmax)), F(prior.ymax + F(v[3] * b.ymax))]
    elif code == CORNER_SIZE:
        pw, ph = F(prior.xmax - prior.xmin), F(prior.ymax - prior.ymin)
        out = [F(prior.xmin + F(F(v[0] * b.xmin) * pw)), F(prior.ymin + F(F(v[1] * b.ymin) * ph)),
               F(prior.xmax + F(F(v[2] * b.xmax) * pw)), F(prior.ymax + F(F(v[3] * b.ymax) * ph))]
    else:
        pw, ph = F(prior.xmax - prior.xmin), F(prior.ymax - prior.ymin)
        pcx, pcy = F(F(prior.xmin + prior.xmax) / 2), F(F(prior.ymin + prior.ymax) / 2)
        cx = F(F(F(v[0] * b.xmin) * pw) + pcx)
        cy = F(F(F(v[1] * b.ymin) * ph) + pcy)
        w = F(math.exp(float(F(v[2] * b.xmax))) * float(pw))
        h = F(math.exp(float(F(v[3] * b.ymax))) * float(ph))
        out = [F(float(cx) - float(w) / 2), F(float(cy) - float(h) / 2),
               F(float(cx) + float(w) / 2), F(float(cy) + float(h) / 2)]
    box = Box(*out)
    box.size = size_of(Box(*out))
    return box


def apply_nms(boxes: list[Box], scores: list[float], thr: float, top_k: int) -> list[int]:
    pairs = sorted(((scores[i], i) for i in range(len(scores))), key=lambda q: -q[0])
    if -1 < top_k < len(pairs):
        pairs = pairs[:top_k]
    out: list[int] = []
    while pairs:
        best = pairs.pop(0)[1]
        if size_of(boxes[best]) < 1e-5:
            continue
        out.append(best)
        if top_k > -1 and len(out) >= top_k:
            break
        keep = []
        for sc, k in pairs:
            if size_of(boxes[k]) < 1e-5:
                continue
            if jaccard(boxes[best], boxes[k]) > F(thr):
                continue
            keep.append((sc, k))
        pairs = keep
    return out


def softmax_row(x: np.ndarray) -> np.ndarray:
    e = np.exp(x.astype(np.float64) - float(x.max()))
    return e / e.sum()


def logistic_terms(x: np.ndarray, t: np.ndarray) -> float:
    loss = 0.0
    for c in range(len(x)):
        xi, pos = float(x[c]), float(x[c] >= 0)
        loss -= xi * (float(t[c]) - pos) - math.log(1 + math.exp(xi - 2 * xi * pos))
    return loss


def normalizer(mode: int, num: int, priors: int, valid: int) -> float:
    value = {FULL: num * priors, VALID: valid, BATCH_SIZE: num, NONE_NORM: 1}[mode]
    return float(max(1, value))


def reference(loc: np.ndarray, conf: np.ndarray, prior: np.ndarray, gt: np.ndarray,
              p: Params) -> tuple[float, np.ndarray, np.ndarray]:
    """(loss, d loss / d loc, d loss / d conf) as the fork computes them."""
    num = loc.shape[0]
    npri = prior.size // 8
    nc = p.num_classes
    lc = 1 if p.share_location else nc
    loc = loc.reshape(num, -1).astype(F)
    conf = conf.reshape(num, -1).astype(F)
    flat = prior.reshape(-1).astype(F)
    # GetGroundTruth
    gts: dict[int, list[Box]] = {}
    for r in gt.reshape(-1, 8).astype(F):
        item = int(r[0])
        if item == -1:
            continue
        label = int(r[1])
        assert label != p.background
        if not p.use_difficult_gt and bool(r[7]):
            continue
        b = Box(r[3], r[4], r[5], r[6], label)
        b.size = size_of(Box(r[3], r[4], r[5], r[6]))
        gts.setdefault(item, []).append(b)
    # GetPriorBBoxes
    priors, variances = [], []
    for k in range(npri):
        b = Box(*flat[4 * k: 4 * k + 4])
        b.size = size_of(Box(*flat[4 * k: 4 * k + 4]))
        priors.append(b)
        variances.append(list(flat[4 * (npri + k): 4 * (npri + k) + 4]))
    # GetLocPredictions
    preds = []
    for i in range(num):
        by_label: dict[int, list[Box]] = {}
        for k in range(npri):
            for c in range(lc):
                s = k * lc * 4 + c * 4
                by_label.setdefault(-1 if p.share_location else c, []).append(
                    Box(*loc[i, s: s + 4]))
        preds.append(by_label)
    # FindMatches
    all_idx: list[dict[int, list[int]]] = []
    all_ov: list[dict[int, list[F]]] = []
    for i in range(num):
        idx_map: dict[int, list[int]] = {}
        ov_map: dict[int, list[F]] = {}
        if i in gts:
            g = gts[i]
            if not p.use_prior_for_matching:
                for c in range(lc):
                    label = -1 if p.share_location else c
                    if not p.share_location and label == p.background:
                        continue
                    boxes = [decode(priors[k], variances[k], p.code_type, p.variance_in_target,
                                    preds[i][label][k]) for k in range(npri)]
                    idx_map[label], ov_map[label] = match_bbox(
                        g, boxes, label, p.match_type, F(p.overlap_threshold),
                        p.ignore_cross_boundary)
            else:
                ti, to = match_bbox(g, priors, -1, p.match_type, F(p.overlap_threshold),
                                    p.ignore_cross_boundary)
                if p.share_location:
                    idx_map[-1], ov_map[-1] = ti, to
                else:
                    for c in range(lc):
                        if c == p.background:
                            continue
                        idx_map[c] = [-1] * npri
                        ov_map[c] = list(to)
                        for m in range(npri):
                            if ti[m] > -1 and g[ti[m]].label == c:
                                idx_map[c][m] = ti[m]
        all_idx.append(idx_map)
        all_ov.append(ov_map)

    def encoded(i: int, label: int, j: int) -> tuple[list[F], list[F]]:
        g = gts[i][all_idx[i][label][j]]
        t = encode(priors[j], variances[j], p.code_type, p.variance_in_target, g)
        pr = preds[i][label][j]
        pv = [pr.xmin, pr.ymin, pr.xmax, pr.ymax]
        if p.bp_inside:
            mb = priors[j]
            if not p.use_prior_for_matching:
                mb = decode(priors[j], variances[j], p.code_type, p.variance_in_target, pr)
            mv = [mb.xmin, mb.ymin, mb.xmax, mb.ymax]
            pv = [t[k] if (mv[k] < 0 or mv[k] > 1) else pv[k] for k in range(4)]
        if p.variance_in_target:
            pv = [F(pv[k] / variances[j][k]) for k in range(4)]
            t = [F(t[k] / variances[j][k]) for k in range(4)]
        return pv, t

    # MineHardExamples
    num_matches = sum(1 for d in all_idx for v in d.values() for m in v if m > -1)
    num_negs = 0
    all_neg: list[list[int]] = []
    if p.mining != NONE_MINING:
        for i in range(num):
            loss = [0.0] * npri
            for j in range(npri):
                label = p.background
                for lab in sorted(all_idx[i]):
                    if all_idx[i][lab][j] > -1:
                        label = gts[i][all_idx[i][lab][j]].label
                        break
                x = conf[i, j * nc:(j + 1) * nc]
                if p.conf_loss == SOFTMAX:
                    loss[j] = -math.log(max(softmax_row(x)[label], FLT_MIN))
                else:
                    t = np.array([1.0 if c == label else 0.0 for c in range(nc)])
                    loss[j] = logistic_terms(x, t)
            if p.mining == HARD_EXAMPLE:
                for lab in sorted(all_idx[i]):
                    for j in range(npri):
                        if all_idx[i][lab][j] > -1:
                            pv, t = encoded(i, lab, j)
                            s = 0.0
                            for k in range(4):
                                d = float(pv[k]) - float(t[k])
                                if p.loc_loss == SMOOTH_L1 and abs(d) >= 1:
                                    s += abs(d) - 0.5
                                else:
                                    s += 0.5 * d * d
                            loss[j] += s
            negs: list[int] = []
            for lab in sorted(all_idx[i]):
                mi = all_idx[i][lab]
                mo = all_ov[i][lab]
                cands = []
                for m in range(npri):
                    ok = (mi[m] == -1 and mo[m] < F(p.neg_overlap)) if p.mining == MAX_NEGATIVE \
                        else True
                    if ok:
                        cands.append((loss[m], m))
                if p.mining == MAX_NEGATIVE:
                    num_pos = sum(1 for m in mi if m > -1)
                    num_sel = min(int(F(num_pos) * F(p.neg_pos_ratio)), len(cands))
                else:
                    num_sel = min(p.sample_size, len(cands))
                if p.nms_threshold > 0:
                    boxes = [priors[m] if p.use_prior_for_nms else
                             decode(priors[m], variances[m], p.code_type, p.variance_in_target,
                                    preds[i][lab][m]) for _, m in cands]
                    kept = apply_nms(boxes, [sc for sc, _ in cands], p.nms_threshold,
                                     p.nms_top_k)
                    num_sel = min(len(kept), num_sel)
                    sel = {cands[kept[n]][1] for n in range(num_sel)}
                else:
                    ranked = sorted(cands, key=lambda pair: -pair[0])  # stable: prior order
                    sel = {m for _, m in ranked[:num_sel]}
                for m in range(npri):
                    if mi[m] > -1:
                        if p.mining == HARD_EXAMPLE and m not in sel:
                            mi[m] = -1
                            num_matches -= 1
                    elif mi[m] == -1 and m in sel:
                        negs.append(m)
                        num_negs += 1
            all_neg.append(negs)

    norm = normalizer(p.normalization, num, npri, num_matches)
    dloc = np.zeros_like(loc, dtype=np.float64)
    dconf = np.zeros_like(conf, dtype=np.float64)
    total = 0.0
    # localisation
    loc_loss = 0.0
    if num_matches >= 1:
        for i in range(num):
            for lab in sorted(all_idx[i]):
                slot = 0 if p.share_location else lab
                for j in range(npri):
                    if all_idx[i][lab][j] <= -1:
                        continue
                    pv, t = encoded(i, lab, j)
                    for k in range(4):
                        d = float(pv[k]) - float(t[k])
                        if p.loc_loss == SMOOTH_L1:
                            loc_loss += 0.5 * d * d if abs(d) < 1 else abs(d) - 0.5
                            g = d if abs(d) < 1 else float(np.sign(d))
                        else:
                            loc_loss += 0.5 * d * d
                            g = d
                        dloc[i, lc * 4 * j + slot * 4 + k] = p.loc_weight * g / norm
    # confidence
    rows: list[tuple[int, int, np.ndarray]] = []  # (image, prior, target)
    if p.mining != NONE_MINING:
        for i in range(num):
            if i not in gts:
                continue
            for lab in sorted(all_idx[i]):
                for j in range(npri):
                    m = all_idx[i][lab][j]
                    if m <= -1:
                        continue
                    g = p.background + 1 if p.map_object_to_agnostic else gts[i][m].label
                    if p.conf_loss == SOFTMAX:
                        rows.append((i, j, np.array(g)))
                    else:
                        t = np.full(nc, float(p.background))
                        t[g] = 1
                        rows.append((i, j, t))
            for j in all_neg[i]:
                if p.conf_loss == SOFTMAX:
                    rows.append((i, j, np.array(p.background)))
                else:
                    t = np.full(nc, float(p.background))
                    if 0 <= p.background < nc:
                        t[p.background] = 1
                    rows.append((i, j, t))
    elif p.conf_loss == SOFTMAX:
        labels = np.full((num, npri), p.background)
        for i in range(num):
            if i not in gts:
                continue
            for lab in sorted(all_idx[i]):
                for j in range(npri):
                    m = all_idx[i][lab][j]
                    if m > -1:
                        labels[i, j] = p.background + 1 if p.map_object_to_agnostic \
                            else gts[i][m].label
        rows = [(i, j, np.array(labels[i, j])) for i in range(num) for j in range(npri)]
    else:
        target = np.full(num * npri * nc, float(p.background))
        for i in range(num):
            if i not in gts:
                continue
            for lab in sorted(all_idx[i]):
                for j in range(npri):
                    m = all_idx[i][lab][j]
                    if m > -1:
                        g = p.background + 1 if p.map_object_to_agnostic else gts[i][m].label
                        target[i * npri + j * nc + g] = 1  # the fork's pointer step
        target = target.reshape(num, npri, nc)
        rows = [(i, j, target[i, j]) for i in range(num) for j in range(npri)]
    conf_loss = 0.0
    for i, j, t in rows:
        x = conf[i, j * nc:(j + 1) * nc]
        if p.conf_loss == SOFTMAX:
            prob = softmax_row(x)
            conf_loss -= math.log(max(prob[int(t)], FLT_MIN))
            g = prob.copy()
            g[int(t)] -= 1
        else:
            conf_loss += logistic_terms(x, t)
            g = np.array([0.5 * math.tanh(0.5 * float(v)) + 0.5 for v in x]) - t
        dconf[i, j * nc:(j + 1) * nc] = g / norm
    if p.propagate[0]:
        total += p.loc_weight * loc_loss / norm
    if p.propagate[1]:
        total += conf_loss / norm
    if not p.propagate[0]:
        dloc[:] = 0
    if not p.propagate[1]:
        dconf[:] = 0
    return total, dloc, dconf
