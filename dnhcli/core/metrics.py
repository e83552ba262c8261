"""Retrieval ranking and metrics on packed binary codes (numpy, vectorised, chunked).

Ranking rule: gallery items are ordered by Hamming distance to the query; ties are
broken by gallery order (stable), so results are deterministic.
"""

from __future__ import annotations

import numpy as np

from dnhcli.core.codes import hamming_distances
from dnhcli.core.errors import InputError

_QUERY_CHUNK = 256


def top_k(queries: np.ndarray, gallery: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(distances, indices), each (Q, min(k, N)): the k nearest gallery codes per query,
    ascending distance, ties in gallery order."""
    if k < 1:
        raise InputError(f"k must be at least 1, got {k}")
    n = len(gallery)
    k = min(k, n)
    dist_out = np.empty((len(queries), k), np.int32)
    idx_out = np.empty((len(queries), k), np.int64)
    for start in range(0, len(queries), _QUERY_CHUNK):
        dist = hamming_distances(queries[start:start + _QUERY_CHUNK], gallery)
        # One unique key per (distance, position): selection then order are exact and stable.
        key = dist.astype(np.int64) * n + np.arange(n)
        part = np.argpartition(key, k - 1, axis=1)[:, :k] if k < n else np.tile(np.arange(n), (len(key), 1))
        order = np.take_along_axis(key, part, axis=1).argsort(axis=1)
        idx = np.take_along_axis(part, order, axis=1)
        idx_out[start:start + len(idx)] = idx
        dist_out[start:start + len(idx)] = np.take_along_axis(dist, idx, axis=1)
    return dist_out, idx_out


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
    _, ranked = top_k(queries, gallery, k)
    return float(average_precision_at_k(relevance(ranked, query_labels, gallery_labels)).mean())
