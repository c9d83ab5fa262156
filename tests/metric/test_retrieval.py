"""Recall@K and mAP on cases worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from caffe2torch.metric.retrieval import mean_average_precision, recall_at_k

# 1-D points: 0 and 1 are class 0, 3 and 10 are class 1.
LINE = np.array([[0.0], [1.0], [3.0], [10.0]])
LINE_LABELS = np.array([0, 0, 1, 1])


def test_leave_one_out_by_hand():
    # nearest relevant ranks: 0 -> 1 (rank 1), 1 -> 0 (rank 1),
    # 3 -> 10 behind 1 and 0 (rank 3), 10 -> 3 (rank 1)
    assert recall_at_k(LINE, LINE_LABELS, ks=(1, 2, 3)) == {1: 0.75, 2: 0.75, 3: 1.0}
    # AP: 1, 1, 1/3, 1
    assert mean_average_precision(LINE, LINE_LABELS) == pytest.approx((3 + 1 / 3) / 4)


def test_query_never_retrieves_itself():
    # without leave-one-out every query would find itself at distance 0
    pts = np.array([[0.0], [5.0], [6.0]])
    labels = np.array([0, 1, 0])
    assert recall_at_k(pts, labels, ks=(1,)) == {1: 0.0}  # 1 has no other class-1 item
    assert mean_average_precision(pts, labels) == pytest.approx(0.5)  # both ranks 2


def test_ties_count_against_the_query():
    # query 0 has its positive (1) and a negative (-1) at the same distance
    pts = np.array([[0.0], [1.0], [-1.0]])
    labels = np.array([0, 0, 1])
    assert recall_at_k(pts, labels, ks=(1, 2)) == {1: 0.5, 2: 1.0}
    assert mean_average_precision(pts, labels) == pytest.approx((0.5 + 1.0) / 2)


def test_collapsed_embedding_is_not_perfect():
    pts = np.zeros((4, 3))
    labels = np.array([0, 0, 1, 1])
    # every item ties: the one positive always ranks behind both negatives
    assert recall_at_k(pts, labels, ks=(1, 2, 3)) == {1: 0.0, 2: 0.0, 3: 1.0}
    assert mean_average_precision(pts, labels) == pytest.approx(1 / 3)


def test_single_class_is_always_right():
    pts = np.random.default_rng(0).normal(size=(6, 2))
    labels = np.full(6, 7)
    assert recall_at_k(pts, labels, ks=(1, 3)) == {1: 1.0, 3: 1.0}
    assert mean_average_precision(pts, labels) == pytest.approx(1.0)


def test_k_larger_than_gallery():
    gallery = np.array([[0.0], [4.0]])
    queries = np.array([[3.9], [0.1]])
    got = recall_at_k(queries, np.array([0, 1]), ks=(1, 2, 50), gallery=gallery,
                      gallery_labels=np.array([0, 1]))
    assert got == {1: 0.0, 2: 1.0, 50: 1.0}


def test_separate_gallery_by_hand():
    gallery = np.array([[0.0, 0.0], [1.0, 0.0], [5.0, 5.0], [6.0, 5.0]])
    g_labels = np.array([0, 1, 1, 0])
    queries = np.array([[0.2, 0.0], [5.9, 5.0]])
    q_labels = np.array([0, 1])
    # query 0 ranks: g0 (rel), g1, g2, g3 (rel) -> AP (1 + 2/4) / 2
    # query 1 ranks: g3, g2 (rel), g1 (rel), g0 -> AP (1/2 + 2/3) / 2
    assert mean_average_precision(queries, q_labels, gallery, g_labels) == pytest.approx(
        (0.75 + (1 / 2 + 2 / 3) / 2) / 2)
    assert recall_at_k(queries, q_labels, (1, 2), gallery, g_labels) == {1: 0.5, 2: 1.0}


def test_queries_without_relevant_items_are_skipped():
    pts = np.array([[0.0], [1.0], [9.0]])
    labels = np.array([0, 0, 5])  # class 5 has a single item
    assert recall_at_k(pts, labels, ks=(1,)) == {1: 1.0}
    assert mean_average_precision(pts, labels) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="no query"):
        recall_at_k(pts, np.array([0, 1, 2]))


def test_blocks_give_the_same_answer(monkeypatch):
    import caffe2torch.metric.retrieval as retrieval

    rng = np.random.default_rng(3)
    pts = rng.normal(size=(37, 4))
    labels = rng.integers(0, 4, size=37)
    whole = (recall_at_k(pts, labels, (1, 5)), mean_average_precision(pts, labels))
    monkeypatch.setattr(retrieval, "_BLOCK_VALUES", 50)  # one or two queries per block
    assert (recall_at_k(pts, labels, (1, 5)), mean_average_precision(pts, labels)) == (
        pytest.approx(whole[0]), pytest.approx(whole[1]))


def test_matches_a_direct_computation():
    # brute force with an explicit sort, ties impossible with continuous data
    rng = np.random.default_rng(5)
    pts = rng.normal(size=(25, 3))
    labels = rng.integers(0, 3, size=25)
    d = np.sqrt(((pts[:, None] - pts[None]) ** 2).sum(-1))
    np.fill_diagonal(d, np.inf)
    hits = labels[np.argsort(d, axis=1)] == labels[:, None]
    hits = hits[:, :-1]  # the query itself sorts last
    assert recall_at_k(pts, labels, (1, 4)) == pytest.approx(
        {1: hits[:, :1].any(1).mean(), 4: hits[:, :4].any(1).mean()})
    prec = np.cumsum(hits, 1) / np.arange(1, hits.shape[1] + 1)
    ap = (prec * hits).sum(1) / hits.sum(1)
    assert mean_average_precision(pts, labels) == pytest.approx(ap.mean())


def test_bad_arguments():
    with pytest.raises(ValueError, match="labels"):
        recall_at_k(LINE, LINE_LABELS[:3])
    with pytest.raises(ValueError, match="K"):
        recall_at_k(LINE, LINE_LABELS, ks=(0,))
    with pytest.raises(ValueError, match="both"):
        mean_average_precision(LINE, LINE_LABELS, gallery=LINE)
    with pytest.raises(ValueError, match="dimensions"):
        recall_at_k(LINE, LINE_LABELS, gallery=np.zeros((2, 2)),
                    gallery_labels=np.array([0, 1]))
