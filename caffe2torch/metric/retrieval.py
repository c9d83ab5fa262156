"""Retrieval metrics: rank a gallery by Euclidean distance to each query embedding.

Conventions shared by both metrics:

* without a gallery, each embedding is a query against all the others (leave-one-out: the
  query itself is never retrieved);
* an item is relevant when its label equals the query's; queries with no relevant item in
  the gallery are left out (no ranking could succeed for them);
* ties in distance are broken against the query: an irrelevant item at the same distance
  as a relevant one ranks first. A collapsed embedding (all distances equal) therefore
  scores low instead of perfectly.

Distance matrices are computed one block of queries at a time so memory stays bounded.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

import numpy as np

_BLOCK_VALUES = 1 << 22  # query rows x gallery columns per block (32 MiB of float64)


def _as_rows(x: np.ndarray, name: str) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 0 or len(x) == 0:
        raise ValueError(f"{name} must hold at least one embedding")
    return x.reshape(len(x), -1)


def _prepare(
    embeddings: np.ndarray, labels: np.ndarray, gallery: np.ndarray | None,
    gallery_labels: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, bool]:
    queries = _as_rows(embeddings, "embeddings")
    q_labels = np.asarray(labels).ravel()
    if len(q_labels) != len(queries):
        raise ValueError(f"{len(queries)} embeddings but {len(q_labels)} labels")
    if (gallery is None) != (gallery_labels is None):
        raise ValueError("give both gallery and gallery_labels, or neither")
    if gallery is None:
        return queries, q_labels, queries, q_labels, True
    g = _as_rows(gallery, "gallery")
    g_labels = np.asarray(gallery_labels).ravel()
    if len(g_labels) != len(g):
        raise ValueError(f"{len(g)} gallery embeddings but {len(g_labels)} gallery labels")
    if g.shape[1] != queries.shape[1]:
        raise ValueError(f"queries have {queries.shape[1]} dimensions, the gallery "
                         f"{g.shape[1]}")
    return queries, q_labels, g, g_labels, False


def _blocks(
    embeddings: np.ndarray, labels: np.ndarray, gallery: np.ndarray | None,
    gallery_labels: np.ndarray | None,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(squared distances, relevant mask) for consecutive blocks of queries. Excluded
    entries (the query itself) have distance +inf and are not relevant."""
    q, q_labels, g, g_labels, leave_one_out = _prepare(embeddings, labels, gallery,
                                                       gallery_labels)
    g_norms = np.einsum("ij,ij->i", g, g)
    rows = max(1, _BLOCK_VALUES // len(g))
    for start in range(0, len(q), rows):
        block = q[start:start + rows]
        d2 = np.einsum("ij,ij->i", block, block)[:, None] + g_norms[None, :]
        d2 -= 2.0 * (block @ g.T)
        np.maximum(d2, 0.0, out=d2)
        relevant = q_labels[start:start + rows, None] == g_labels[None, :]
        if leave_one_out:
            own = np.arange(len(block))
            d2[own, start + own] = np.inf
            relevant[own, start + own] = False
        yield d2, relevant


def _first_relevant_rank(d2: np.ndarray, relevant: np.ndarray) -> np.ndarray:
    """1-based rank of each query's nearest relevant item, ties counted against the query
    (0 where the query has no relevant item)."""
    nearest = np.where(relevant, d2, np.inf).min(axis=1)
    before = (d2 <= nearest[:, None]) & ~relevant & np.isfinite(d2)
    rank = before.sum(axis=1) + 1
    return np.where(relevant.any(axis=1), rank, 0)


def _check_ks(ks: Iterable[int]) -> list[int]:
    out = [int(k) for k in ks]
    if not out or min(out) < 1:
        raise ValueError(f"every K must be >= 1, got {out}")
    return out


def recall_at_k(
    embeddings: np.ndarray,
    labels: np.ndarray,
    ks: Sequence[int] = (1, 5, 10),
    gallery: np.ndarray | None = None,
    gallery_labels: np.ndarray | None = None,
) -> dict[int, float]:
    """{K: fraction of queries with at least one same-label item among their K nearest}.
    K larger than the gallery simply counts every query that has a relevant item."""
    wanted = _check_ks(ks)
    ranks = np.concatenate([_first_relevant_rank(d2, rel)
                            for d2, rel in _blocks(embeddings, labels, gallery,
                                                   gallery_labels)])
    ranks = ranks[ranks > 0]
    if ranks.size == 0:
        raise ValueError("no query has a relevant (same-label) item to retrieve")
    return {k: float(np.mean(ranks <= k)) for k in wanted}


def _average_precisions(d2: np.ndarray, relevant: np.ndarray) -> np.ndarray:
    """Average precision of each query of a block (NaN where it has no relevant item)."""
    # sort by distance, irrelevant before relevant among equal distances (the tie rule)
    order = np.lexsort((relevant, d2), axis=-1)
    hits = np.take_along_axis(relevant, order, axis=1)
    positions = np.arange(1, hits.shape[1] + 1)
    precision = np.cumsum(hits, axis=1) / positions
    n_rel = hits.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(hits, precision, 0.0).sum(axis=1) / n_rel


def mean_average_precision(
    embeddings: np.ndarray,
    labels: np.ndarray,
    gallery: np.ndarray | None = None,
    gallery_labels: np.ndarray | None = None,
) -> float:
    """Mean over queries of the average precision of the gallery ranked by distance."""
    ap = np.concatenate([_average_precisions(d2, rel)
                         for d2, rel in _blocks(embeddings, labels, gallery,
                                                gallery_labels)])
    ap = ap[~np.isnan(ap)]
    if ap.size == 0:
        raise ValueError("no query has a relevant (same-label) item to retrieve")
    return float(ap.mean())


__all__ = ["mean_average_precision", "recall_at_k"]
