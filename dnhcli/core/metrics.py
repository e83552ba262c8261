"""Retrieval ranking and metrics on packed binary codes (numpy, vectorised, chunked).

Ranking (`dnhcli.core.search.topk`): gallery items are ordered by Hamming distance to the
query; ties are broken by gallery order (stable), so results are deterministic.
"""

from __future__ import annotations

import numpy as np

from dnhcli.core.search import topk


def average_precision_at_k(relevant: np.ndarray) -> np.ndarray:
    """AP@k per query from a (Q, k) relevance matrix of the ranked list:
    sum over ranks m of P(m) * rel(m), divided by the relevant items in the top k (0 if none)."""
    rel = np.asarray(relevant, dtype=np.float64)
    hits = np.cumsum(rel, axis=1)
    precision = hits / np.arange(1, rel.shape[1] + 1)
    total = hits[:, -1] if rel.shape[1] else np.zeros(len(rel))
    summed = (precision * rel).sum(axis=1)
    return np.divide(summed, total, out=np.zeros_like(summed), where=total > 0)


def relevance(ranked: np.ndarray, query_labels: np.ndarray, gallery_labels: np.ndarray) -> np.ndarray:
    """(Q, k) bool: gallery item `ranked[q, m]` has the query's label (labels (N,) or (N, L):
    every column must match)."""
    q = np.asarray(query_labels).reshape(len(ranked), -1)
    g = np.asarray(gallery_labels).reshape(len(gallery_labels), -1)
    return (g[ranked] == q[:, None, :]).all(axis=2)


def map_at_k(queries: np.ndarray, gallery: np.ndarray, query_labels: np.ndarray,
             gallery_labels: np.ndarray, k: int) -> float:
    """mAP@k with relevant = equal label (labels (N,) or (N, L): all columns must match)."""
    if not len(queries):
        return 0.0
    _, ranked = topk(queries, gallery, k)
    return float(average_precision_at_k(relevance(ranked, query_labels, gallery_labels)).mean())
