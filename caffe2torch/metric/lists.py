"""Building the list files that Siamese and triplet nets read.

A Siamese net in Caffe reads two ImageData layers row by row: line i of ``train1.txt`` and
line i of ``train2.txt`` form pair i, and both carry the pair's label (1 similar, 0
dissimilar) so that either layer's label top can feed ContrastiveLoss.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np


def _by_class(labels: np.ndarray) -> dict[int, np.ndarray]:
    return {int(c): np.flatnonzero(labels == c) for c in np.unique(labels)}


def _similar_pairs(
    labels: np.ndarray, n: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` pairs of distinct items of one class (classes weighted by their pair count)."""
    groups = _by_class(labels)
    usable = [c for c, idx in groups.items() if len(idx) >= 2]
    if not usable:
        raise ValueError("similar pairs need a class with at least two items")
    sizes = np.array([len(groups[c]) for c in usable], dtype=np.float64)
    weights = sizes * (sizes - 1)
    cls = rng.choice(len(usable), size=n, p=weights / weights.sum())
    a = np.empty(n, dtype=np.int64)
    b = np.empty(n, dtype=np.int64)
    for k, c in enumerate(usable):
        rows = np.flatnonzero(cls == k)
        members = groups[c]
        i = rng.integers(0, len(members), size=len(rows))
        j = (i + rng.integers(1, len(members), size=len(rows))) % len(members)
        a[rows], b[rows] = members[i], members[j]
    return a, b


def _other_class(labels: np.ndarray, anchors: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """For each anchor, a uniformly drawn item of a different class."""
    if len(np.unique(labels)) < 2:
        raise ValueError("dissimilar pairs need at least two classes")
    other = rng.integers(0, len(labels), size=len(anchors))
    clash = labels[other] == labels[anchors]
    while clash.any():
        other[clash] = rng.integers(0, len(labels), size=int(clash.sum()))
        clash = labels[other] == labels[anchors]
    return other


def make_pairs(
    labels: Sequence[int] | np.ndarray, n_pairs: int, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``n_pairs`` index pairs (a, b) with similarity ``sim`` (1 same class, 0 not): exactly
    ``n_pairs // 2`` similar (rounded up), never an item with itself, in random order."""
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    n_sim = (n_pairs + 1) // 2
    sim_a, sim_b = _similar_pairs(labels, n_sim, rng)
    dis_a = rng.integers(0, len(labels), size=n_pairs - n_sim)
    dis_b = _other_class(labels, dis_a, rng)
    a = np.concatenate([sim_a, dis_a])
    b = np.concatenate([sim_b, dis_b])
    sim = np.concatenate([np.ones(n_sim, np.int64), np.zeros(n_pairs - n_sim, np.int64)])
    order = rng.permutation(n_pairs)
    return a[order], b[order], sim[order]


def make_triplets(
    labels: Sequence[int] | np.ndarray, n_triplets: int, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``n_triplets`` (anchor, positive, negative) index triples: anchor and positive share a
    class and differ; the negative is of another class."""
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    anchor, positive = _similar_pairs(labels, n_triplets, rng)
    return anchor, positive, _other_class(labels, anchor, rng)


def write_pair_lists(
    paths: Sequence[str],
    labels: Sequence[int] | np.ndarray,
    out1: str | Path,
    out2: str | Path,
    n_pairs: int,
    seed: int = 0,
) -> np.ndarray:
    """Write aligned ``out1``/``out2`` lists (``path sim`` per line) of ``n_pairs`` balanced
    pairs drawn from ``paths``/``labels``; returns the similarity labels in file order."""
    a, b, sim = make_pairs(labels, n_pairs, seed)
    for out, idx in ((out1, a), (out2, b)):
        lines = [f"{paths[i]} {s}\n" for i, s in zip(idx, sim)]
        Path(out).write_text("".join(lines))
    return sim


def write_triplet_lists(
    paths: Sequence[str],
    labels: Sequence[int] | np.ndarray,
    outs: tuple[str | Path, str | Path, str | Path],
    n_triplets: int,
    seed: int = 0,
) -> None:
    """Write aligned anchor / positive / negative lists (``path class`` per line)."""
    labels = np.asarray(labels)
    triples = make_triplets(labels, n_triplets, seed)
    for out, idx in zip(outs, triples):
        Path(out).write_text("".join(f"{paths[i]} {labels[i]}\n" for i in idx))
