"""Triplet accuracy on hand-made cases."""

from __future__ import annotations

import numpy as np
import pytest

from caffe2torch.metric.triplet import TripletAccuracy, triplet_accuracy


def test_by_hand_with_a_tie_and_classes():
    anchor = np.zeros((4, 2))
    positive = np.array([[1.0, 0.0], [0.0, 2.0], [3.0, 0.0], [0.0, 1.0]])
    negative = np.array([[2.0, 0.0], [2.0, 0.0], [0.0, 1.0], [0.0, -1.0]])
    # d(a,p) vs d(a,n): 1<2 yes, 2<2 no (tie), 3<1 no, 1<1 no (tie)
    got = triplet_accuracy(anchor, positive, negative, np.array([3, 3, 8, 8]))
    assert got == TripletAccuracy(overall=0.25, per_class={3: 0.5, 8: 0.0})


def test_without_labels_and_single_class():
    a = np.array([[0.0], [0.0]])
    p = np.array([[0.5], [0.1]])
    n = np.array([[1.0], [-1.0]])
    assert triplet_accuracy(a, p, n) == TripletAccuracy(overall=1.0, per_class={})
    assert triplet_accuracy(a, p, n, np.array([4, 4])).per_class == {4: 1.0}


def test_feature_maps_are_flattened():
    rng = np.random.default_rng(1)
    a, p, n = (rng.normal(size=(6, 2, 3, 1)) for _ in range(3))
    flat = triplet_accuracy(*(x.reshape(6, -1) for x in (a, p, n)))
    assert triplet_accuracy(a, p, n) == flat
    want = np.mean(((a - p) ** 2).sum((1, 2, 3)) < ((a - n) ** 2).sum((1, 2, 3)))
    assert flat.overall == pytest.approx(want)


def test_lengths_must_agree():
    with pytest.raises(ValueError, match="equal length"):
        triplet_accuracy(np.zeros((2, 1)), np.zeros((2, 1)), np.zeros((3, 1)))
    with pytest.raises(ValueError, match="anchor labels"):
        triplet_accuracy(np.zeros((2, 1)), np.zeros((2, 1)), np.zeros((2, 1)), [1])
