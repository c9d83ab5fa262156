"""Triplet accuracy: how often the anchor is strictly nearer its positive than its
negative (Euclidean distance; a tie counts as a failure).

``triplet_accuracy`` scores given triplets (aligned lists); ``all_triplets_accuracy`` scores
every triplet a labelled set holds, the population a sampled list estimates."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class TripletAccuracy:
    """``overall``: fraction of triplets with d(a, p) < d(a, n); ``per_class``: the same
    fraction among the triplets of each anchor label (empty without labels)."""

    overall: float
    per_class: dict[int, float] = field(default_factory=dict)


def _squared_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    diff = a - b
    return np.einsum("ij,ij->i", diff, diff)


def triplet_accuracy(
    anchor: np.ndarray,
    positive: np.ndarray,
    negative: np.ndarray,
    anchor_labels: np.ndarray | None = None,
) -> TripletAccuracy:
    """Score aligned rows of ``anchor``, ``positive`` and ``negative`` embeddings."""
    rows = [np.asarray(x, dtype=np.float64) for x in (anchor, positive, negative)]
    n = len(rows[0])
    if n == 0 or any(len(x) != n for x in rows):
        raise ValueError("anchor, positive and negative must be non-empty and of equal "
                         f"length, got {[len(x) for x in rows]}")
    a, p, neg = (x.reshape(n, -1) for x in rows)
    correct = _squared_distances(a, p) < _squared_distances(a, neg)  # squares: exact order
    per_class: dict[int, float] = {}
    if anchor_labels is not None:
        labels = np.asarray(anchor_labels).ravel()
        if len(labels) != n:
            raise ValueError(f"{n} triplets but {len(labels)} anchor labels")
        classes, which = np.unique(labels, return_inverse=True)
        rates = np.bincount(which, weights=correct) / np.bincount(which)
        per_class = {int(c): float(r) for c, r in zip(classes, rates)}
    return TripletAccuracy(overall=float(correct.mean()), per_class=per_class)


_BLOCK_VALUES = 1 << 22  # anchor rows x items x dimensions per block (32 MiB of float64)


def all_triplets_accuracy(embeddings: np.ndarray, labels: np.ndarray) -> TripletAccuracy:
    """Triplet accuracy over every triplet of a labelled set: each item as the anchor, each
    other item of its class as the positive, each item of another class as the negative.

    ``overall`` and ``per_class`` (by anchor class) are fractions of triplets, so an
    anchor class weighs by how many triplets it has. A class of one item has no triplets
    and no entry. Cost: one sort per anchor, O(n^2 log n) for n items, no list of
    triplets is made."""
    x = np.asarray(embeddings, dtype=np.float64)
    y = np.asarray(labels).ravel()
    if x.ndim == 0 or len(x) == 0:
        raise ValueError("embeddings must hold at least one row")
    if len(y) != len(x):
        raise ValueError(f"{len(x)} embeddings but {len(y)} labels")
    x = x.reshape(len(x), -1)
    classes, which = np.unique(y, return_inverse=True)
    if len(classes) < 2:
        raise ValueError("all items have one label: there is no negative for any triplet")
    correct = np.zeros(len(classes))
    total = np.zeros(len(classes))
    rows = max(1, _BLOCK_VALUES // (len(x) * x.shape[1]))
    for start in range(0, len(x), rows):
        block = x[start:start + rows]
        diff = block[:, None, :] - x[None, :, :]
        d2 = np.einsum("ijk,ijk->ij", diff, diff)  # differences, not |a|^2+|b|^2-2ab: exact order
        for i, dist in enumerate(d2):
            anchor = start + i
            c = which[anchor]
            same = which == c
            same[anchor] = False
            if not same.any():
                continue
            negatives = np.sort(dist[which != c])
            # negatives strictly farther than each positive (a tie is a failure)
            farther = len(negatives) - np.searchsorted(negatives, dist[same], side="right")
            correct[c] += farther.sum()
            total[c] += same.sum() * len(negatives)
    if not total.any():
        raise ValueError("no class has two items: there is no positive for any triplet")
    has = total > 0
    per_class = {int(k): float(ok / n) for k, ok, n in zip(classes[has], correct[has],
                                                           total[has])}
    return TripletAccuracy(overall=float(correct.sum() / total.sum()), per_class=per_class)


__all__ = ["TripletAccuracy", "all_triplets_accuracy", "triplet_accuracy"]
