"""Triplet accuracy: how often the anchor is strictly nearer its positive than its
negative (Euclidean distance; a tie counts as a failure)."""

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


__all__ = ["TripletAccuracy", "triplet_accuracy"]
