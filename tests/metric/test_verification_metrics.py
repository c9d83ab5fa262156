"""Verification metrics on hand-made cases."""

from __future__ import annotations

import numpy as np
import pytest

from caffe2torch.metric.verification import (
    accuracy_at,
    best_threshold,
    equal_error_rate,
    pair_distances,
    roc_auc,
    roc_curve,
)


def test_pair_distances():
    a = np.array([[0.0, 0.0], [1.0, 1.0]])
    b = np.array([[3.0, 4.0], [1.0, 1.0]])
    np.testing.assert_allclose(pair_distances(a, b), [5.0, 0.0])


def test_perfect_separation():
    d = np.array([0.1, 0.2, 0.3, 0.9, 1.0])
    same = np.array([1, 1, 1, 0, 0])
    assert roc_auc(d, same) == pytest.approx(1.0)
    assert equal_error_rate(d, same) == pytest.approx(0.0)
    threshold, acc = best_threshold(d, same)
    assert acc == 1.0
    assert threshold == pytest.approx(0.6)
    assert accuracy_at(d, same, threshold) == 1.0


def test_inverted_scores_give_zero_auc():
    d = np.array([0.9, 1.0, 0.1, 0.2])
    same = np.array([1, 1, 0, 0])
    assert roc_auc(d, same) == pytest.approx(0.0)
    assert equal_error_rate(d, same) == pytest.approx(1.0)


def test_auc_counts_ties_half_and_matches_rank_formula():
    rng = np.random.default_rng(0)
    d = rng.integers(0, 5, size=200).astype(float)
    same = rng.integers(0, 2, size=200)
    pos, neg = d[same == 1], d[same == 0]
    # Probability that a similar pair is nearer than a dissimilar one (ties half).
    expected = np.mean((pos[:, None] < neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :]))
    assert roc_auc(d, same) == pytest.approx(expected)


def test_roc_curve_ends():
    curve = roc_curve(np.array([0.5, 0.2, 0.7]), np.array([1, 0, 1]))
    assert curve.fpr[0] == 0 and curve.tpr[0] == 0
    assert curve.fpr[-1] == 1 and curve.tpr[-1] == 1


def test_best_threshold_with_overlap():
    d = np.array([0.1, 0.4, 0.5, 0.6])
    same = np.array([1, 0, 1, 0])
    threshold, acc = best_threshold(d, same)
    assert acc == pytest.approx(0.75)
    assert accuracy_at(d, same, threshold) == pytest.approx(0.75)


def test_mismatched_lengths_are_refused():
    with pytest.raises(ValueError):
        roc_auc(np.zeros(3), np.zeros(2))
