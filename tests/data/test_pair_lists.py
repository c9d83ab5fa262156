"""Pair and triplet list builders: balance, alignment, no self-pairs, reproducible."""

from __future__ import annotations

import numpy as np
import pytest

from caffe2torch.metric.lists import make_pairs, make_triplets, write_pair_lists

LABELS = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2, 3])


def test_pairs_are_balanced_and_labelled_correctly():
    a, b, sim = make_pairs(LABELS, 101, seed=3)
    assert len(a) == len(b) == len(sim) == 101
    assert sim.sum() == 51
    np.testing.assert_array_equal(sim, (LABELS[a] == LABELS[b]).astype(int))
    assert not np.any(a == b)


def test_pairs_are_reproducible_and_seed_dependent():
    first = make_pairs(LABELS, 50, seed=1)
    again = make_pairs(LABELS, 50, seed=1)
    other = make_pairs(LABELS, 50, seed=2)
    for x, y in zip(first, again):
        np.testing.assert_array_equal(x, y)
    assert any(not np.array_equal(x, y) for x, y in zip(first, other))


def test_pairs_need_two_classes():
    with pytest.raises(ValueError, match="two classes"):
        make_pairs(np.zeros(5, int), 4)


def test_triplets():
    anchor, positive, negative = make_triplets(LABELS, 40, seed=0)
    assert np.all(LABELS[anchor] == LABELS[positive])
    assert np.all(anchor != positive)
    assert np.all(LABELS[anchor] != LABELS[negative])


def test_written_lists_are_row_aligned(tmp_path):
    paths = [f"img/{i}.png" for i in range(len(LABELS))]
    sim = write_pair_lists(paths, LABELS, tmp_path / "train1.txt", tmp_path / "train2.txt", 30)
    left = (tmp_path / "train1.txt").read_text().splitlines()
    right = (tmp_path / "train2.txt").read_text().splitlines()
    assert len(left) == len(right) == 30
    for line1, line2, s in zip(left, right, sim):
        p1, l1 = line1.rsplit(" ", 1)
        p2, l2 = line2.rsplit(" ", 1)
        assert int(l1) == int(l2) == s
        same = LABELS[int(p1[4:-4])] == LABELS[int(p2[4:-4])]
        assert same == bool(s)
