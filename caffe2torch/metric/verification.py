"""Pair verification metrics: is a pair the same identity, judged by the distance between
its two embeddings? Smaller distance means "same"; ``same`` labels are 1 (similar) / 0."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class RocCurve:
    """False/true positive rates over every distance threshold, nearest first."""

    fpr: np.ndarray
    tpr: np.ndarray
    thresholds: np.ndarray


def pair_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Euclidean distance between row i of ``a`` and row i of ``b``."""
    a = np.asarray(a, dtype=np.float64).reshape(len(a), -1)
    b = np.asarray(b, dtype=np.float64).reshape(len(b), -1)
    return np.sqrt(((a - b) ** 2).sum(axis=1))


def _validate(distances: np.ndarray, same: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    d = np.asarray(distances, dtype=np.float64).ravel()
    s = np.asarray(same).ravel().astype(bool)
    if d.shape != s.shape or d.size == 0:
        raise ValueError("distances and labels must be non-empty and of equal length")
    return d, s


def roc_curve(distances: np.ndarray, same: np.ndarray) -> RocCurve:
    """The ROC curve of the rule "same when distance <= t" over every distinct t."""
    d, s = _validate(distances, same)
    order = np.argsort(d, kind="stable")
    d, s = d[order], s[order]
    last_of_value = np.r_[d[1:] != d[:-1], True]  # ties move together
    tp = np.cumsum(s)[last_of_value]
    fp = np.cumsum(~s)[last_of_value]
    n_pos, n_neg = max(int(s.sum()), 1), max(int((~s).sum()), 1)
    return RocCurve(
        fpr=np.r_[0.0, fp / n_neg],
        tpr=np.r_[0.0, tp / n_pos],
        thresholds=np.r_[-np.inf, d[last_of_value]],
    )


def roc_auc(distances: np.ndarray, same: np.ndarray) -> float:
    """Area under the ROC curve (trapezoids, so tied distances count half)."""
    curve = roc_curve(distances, same)
    return float(np.trapezoid(curve.tpr, curve.fpr))


def equal_error_rate(distances: np.ndarray, same: np.ndarray) -> float:
    """The error rate where false accepts equal false rejects (linear interpolation)."""
    curve = roc_curve(distances, same)
    fnr = 1.0 - curve.tpr
    gap = curve.fpr - fnr  # rises from -1 to +1 along the curve
    k = int(np.searchsorted(gap, 0.0))
    if k == 0:
        return float(curve.fpr[0])
    g0, g1 = gap[k - 1], gap[k]
    w = 0.0 if g1 == g0 else -g0 / (g1 - g0)
    return float(curve.fpr[k - 1] + w * (curve.fpr[k] - curve.fpr[k - 1]))


def accuracy_at(distances: np.ndarray, same: np.ndarray, threshold: float) -> float:
    """Fraction of pairs the rule "same when distance <= threshold" gets right."""
    d, s = _validate(distances, same)
    return float(np.mean((d <= threshold) == s))


def best_threshold(distances: np.ndarray, same: np.ndarray) -> tuple[float, float]:
    """(threshold, accuracy) maximising accuracy on these pairs; the threshold sits midway
    between the two distances it separates, so it transfers to new pairs fairly."""
    d, s = _validate(distances, same)
    curve = roc_curve(d, s)
    n_pos, n_neg = int(s.sum()), int((~s).sum())
    correct = curve.tpr * n_pos + (1.0 - curve.fpr) * n_neg
    k = int(np.argmax(correct))
    values = curve.thresholds
    if k == 0:
        threshold = float(values[1]) - 1e-12 if len(values) > 1 else 0.0
    elif k + 1 < len(values):
        threshold = float((values[k] + values[k + 1]) / 2)
    else:
        threshold = float(values[k])
    return threshold, float(correct[k] / len(d))
