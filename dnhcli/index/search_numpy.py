"""Exact Hamming top-k and range search in plain numpy, for small searches in a fresh process.

Loading the numba kernels from their cache costs about 0.6 s in a new process (numba builds
its CPU target first), far more than a few thousand distances cost in numpy. `search.topk`
and `search.range_search` use these functions while the numba kernels are not loaded and the
work is small; the results are the same to the last tie (ascending distance, ties by id).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

# Bytes of XOR temporaries per block of queries (bounds memory for any number of queries).
_BLOCK_BYTES = 16 * 1024 * 1024


def _distance_blocks(queries: np.ndarray, codes: np.ndarray) -> Iterator[tuple[int, np.ndarray]]:
    """Yield (first query, int32 distances (q, N)) for blocks of queries."""
    per_query = max(1, codes.size)
    step = max(1, _BLOCK_BYTES // per_query)
    for lo in range(0, len(queries), step):
        block = queries[lo:lo + step]
        xor = np.bitwise_xor(block[:, None, :], codes[None, :, :])
        yield lo, np.bitwise_count(xor).sum(axis=2, dtype=np.int32)


def _stable_topk(dist: np.ndarray, k: int) -> np.ndarray:
    """Ids of the k smallest distances of one row, exactly `argsort(dist, kind="stable")[:k]`."""
    if k >= len(dist):
        return np.argsort(dist, kind="stable")
    cut = np.partition(dist, k - 1)[k - 1]
    below = np.flatnonzero(dist < cut)
    ties = np.flatnonzero(dist == cut)[:k - len(below)]
    chosen = np.sort(np.concatenate([below, ties]))  # id order, so the stable sort keeps it in ties
    return chosen[np.argsort(dist[chosen], kind="stable")]


def topk_numpy(queries: np.ndarray, codes: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(distances int32, ids int64), each (Q, k) with k <= N: the k nearest codes of each query."""
    out_d = np.empty((len(queries), k), np.int32)
    out_i = np.empty((len(queries), k), np.int64)
    for lo, dist in _distance_blocks(queries, codes):
        for row, d in enumerate(dist):
            ids = _stable_topk(d, k)
            out_i[lo + row] = ids
            out_d[lo + row] = d[ids]
    return out_d, out_i


def range_numpy(queries: np.ndarray, codes: np.ndarray,
                radius: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(lims int64 (Q+1,), distances int32, ids int64): every code within `radius` of each query,
    sorted by (distance, id)."""
    lims = np.zeros(len(queries) + 1, np.int64)
    found_d: list[np.ndarray] = []
    found_i: list[np.ndarray] = []
    for lo, dist in _distance_blocks(queries, codes):
        for row, d in enumerate(dist):
            ids = np.flatnonzero(d <= radius)
            ids = ids[np.argsort(d[ids], kind="stable")]
            found_i.append(ids.astype(np.int64))
            found_d.append(d[ids])
            lims[lo + row + 1] = lims[lo + row] + len(ids)
    if not found_i:
        return lims, np.empty(0, np.int32), np.empty(0, np.int64)
    return lims, np.concatenate(found_d).astype(np.int32), np.concatenate(found_i)
