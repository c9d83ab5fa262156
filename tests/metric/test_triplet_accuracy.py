"""Triplet accuracy on hand-made cases."""

from __future__ import annotations

import numpy as np
import pytest

from caffe2torch.metric.triplet import TripletAccuracy, all_triplets_accuracy, triplet_accuracy


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


def _every_triplet(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    a, p, n = zip(*[(i, j, k) for i in range(len(labels)) for j in range(len(labels))
                    for k in range(len(labels))
                    if i != j and labels[i] == labels[j] and labels[k] != labels[i]])
    return np.array(a), np.array(p), np.array(n)


def test_every_triplet_by_hand():
    # 1-D points: class 0 at 0 and 1, class 1 at 3 and 1 (a tie with the class-0 item at 1)
    x = np.array([[0.0], [1.0], [3.0], [1.0]])
    y = np.array([0, 0, 1, 1])
    got = all_triplets_accuracy(x, y)
    # anchor 0: p=1 (d 1) vs n=3 (3) yes, n=1 (1) tie -> 1/2
    # anchor 1: p=0 (1) vs n=3 (2) yes, n=1 (0) no -> 1/2
    # anchor 2: p=1 (2) vs n=0 (3) yes, n=1 (2) tie -> 1/2
    # anchor 3: p=3 (2) vs n=0 (1) no, n=1 (0) no -> 0/2
    assert got == TripletAccuracy(overall=3 / 8, per_class={0: 0.5, 1: 0.25})


def test_every_triplet_matches_the_enumerated_list():
    rng = np.random.default_rng(7)
    x = rng.normal(size=(23, 3))
    y = rng.integers(0, 4, size=23)
    y[0] = 9  # a class of one item has no triplets and no entry
    a, p, n = _every_triplet(y)
    want = triplet_accuracy(x[a], x[p], x[n], y[a])
    got = all_triplets_accuracy(x, y)
    assert 9 not in got.per_class
    assert got.overall == pytest.approx(want.overall, abs=1e-15)
    assert got.per_class == pytest.approx(want.per_class, abs=1e-15)


def test_every_triplet_in_blocks(monkeypatch):
    import caffe2torch.metric.triplet as triplet

    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(40, 5)), rng.integers(0, 3, size=40)
    whole = all_triplets_accuracy(x, y)
    monkeypatch.setattr(triplet, "_BLOCK_VALUES", 7)  # one anchor per block
    assert all_triplets_accuracy(x, y) == whole


def test_every_triplet_needs_two_classes_and_a_pair():
    with pytest.raises(ValueError, match="one label"):
        all_triplets_accuracy(np.zeros((3, 2)), np.array([1, 1, 1]))
    with pytest.raises(ValueError, match="no positive"):
        all_triplets_accuracy(np.zeros((3, 2)), np.array([1, 2, 3]))
    with pytest.raises(ValueError, match="labels"):
        all_triplets_accuracy(np.zeros((3, 2)), np.array([1, 2]))
