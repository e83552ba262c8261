"""Exact Hamming search over a hash database's segments, and the check of the packed codes
it takes: each segment is searched by the numba kernels of `dnhcli.index.search`, and the
per-segment results are merged so that the answer equals one search over all codes in id
order (ties by id)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from dnhcli.errors import InputError
from dnhcli.stores.segments import Segment


def search_segments(segments: Sequence[Segment], queries: np.ndarray, k: int
                    ) -> tuple[np.ndarray, np.ndarray]:
    """(distances int32, ids int64), both (Q, min(k, N)), ascending distance, ties by id."""
    from dnhcli.index.search import topk

    kept = min(k, sum(s.count for s in segments))
    if kept == 0 or len(queries) == 0:
        return np.zeros((len(queries), kept), np.int32), np.zeros((len(queries), kept), np.int64)
    parts = [topk(queries, s.codes, k) for s in segments]  # topk caps k at N
    dist = np.concatenate([d for d, _ in parts], axis=1).astype(np.int32, copy=False)
    ids = np.concatenate([i + s.start for (_, i), s in zip(parts, segments)], axis=1)
    if len(parts) > 1:
        order = np.lexsort((ids, dist), axis=-1)[:, :kept]
        dist, ids = np.take_along_axis(dist, order, 1), np.take_along_axis(ids, order, 1)
    return dist, ids.astype(np.int64, copy=False)


def range_search_segments(segments: Sequence[Segment], queries: np.ndarray, radius: int
                          ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """FAISS-style (lims int64 (Q+1,), distances int32, ids int64) of every code within
    `radius`; query q's results are [lims[q]:lims[q+1]], sorted by (distance, id)."""
    from dnhcli.index.search import range_search

    rows, dists, ids = [np.zeros(0, np.int64)], [np.zeros(0, np.int32)], [np.zeros(0, np.int64)]
    if len(queries):
        for segment in segments:
            lims, dist, local = range_search(queries, segment.codes, radius)
            rows.append(np.repeat(np.arange(len(queries)), np.diff(lims)))
            dists.append(np.asarray(dist, np.int32))
            ids.append(np.asarray(local, np.int64) + segment.start)
    row, dist, idx = np.concatenate(rows), np.concatenate(dists), np.concatenate(ids)
    order = np.lexsort((idx, dist, row))
    lims = np.zeros(len(queries) + 1, np.int64)
    np.cumsum(np.bincount(row, minlength=len(queries)), out=lims[1:])
    return lims, dist[order], idx[order]


def check_packed(array: Any, bits: int, what: str) -> np.ndarray:
    """`array` as C-contiguous (N, bits/8) uint8 packed codes, or an InputError saying why not."""
    array = np.asarray(array)
    if array.dtype != np.uint8:
        raise InputError(f"{what} must be packed uint8 codes, got dtype {array.dtype}",
                         hint="pack bits with dnhcli.index.codes.pack_codes")
    if array.ndim != 2:
        raise InputError(f"{what} must be a 2-D array (N, {bits // 8}), got shape {array.shape}")
    if array.shape[1] * 8 != bits:
        raise InputError(f"{what} have {array.shape[1] * 8} bits per code, but the hash database "
                         f"holds {bits}-bit codes", hint="use codes from the model that built the database")
    return np.ascontiguousarray(array)
