"""numba kernels behind `dnhcli.index.ranking`: per-query distance histograms by gallery class,
and the asymmetric ranking (Hamming distance, then the query's continuous code inside a tie).

Both reuse the word loading and popcount of `search_kernels`. Compiled with cache=True.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from dnhcli.index.search_kernels import CHUNK, _distance, _load_words, _popcount


@njit(cache=True)
def _histogram_task(qwords, flat, width, n, gclass, out):  # type: ignore[no-untyped-def]
    """out[q, d, c] += number of gallery codes of class c at distance d from query q."""
    nq, nw = qwords.shape
    buf = np.empty((nw, CHUNK), np.uint64)
    for start in range(0, n, CHUNK):
        m = min(CHUNK, n - start)
        _load_words(flat, width, start, m, buf)
        for q in range(nq):
            q0 = qwords[q, 0]
            q1 = qwords[q, nw - 1]
            hist = out[q]
            for i in range(m):
                hist[_distance(q0, q1, buf, i), gclass[start + i]] += 1


# Outputs are allocated by the caller: an array expression inside a parallel function becomes a
# parallel loop, which the one-item scheduling chunks of `search._threads` make very slow.
@njit(cache=True, parallel=True)
def histogram_kernel(qwords, flat, width, n, gclass, qsplit, out):  # type: ignore[no-untyped-def]
    """out (Q, bits + 1, nclass) int32 zeros <- counts, one task per query block (qsplit bounds)."""
    for task in prange(qsplit.shape[0] - 1):
        a, b = qsplit[task], qsplit[task + 1]
        _histogram_task(qwords[a:b], flat, width, n, gclass, out[a:b])


@njit(cache=True)
def _asymmetric_one(qw, lut, gwords, width, bits, kk, gclass, out_ids, out_groups):  # type: ignore[no-untyped-def]
    """Rank one query: top kk ids by (distance, asymmetric key, id) and the class counts of the
    tie groups (equal distance and key) that reach into the top kk, each counted in full."""
    nw, n = gwords.shape
    dist = np.empty(n, np.int64)
    hist = np.zeros(bits + 2, np.int64)
    for i in range(n):
        d = 0
        for w in range(nw):
            d += int(_popcount(qw[w] ^ gwords[w, i]))
        dist[i] = d
        hist[d] += 1
    limit = 0  # smallest distance at which kk codes are reached
    seen = hist[0]
    while seen < kk:
        limit += 1
        seen += hist[limit]
    keys = np.empty(seen, np.float64)
    ids = np.empty(seen, np.int64)
    scale = 1.0 / (bits + 1)  # the key stays inside [d, d + 1): distance first
    c = 0
    for i in range(n):
        if dist[i] > limit:
            continue
        weight = 0.0
        for p in range(width):
            x = (qw[p // 8] ^ gwords[p // 8, i]) >> np.uint64(8 * (p % 8))
            weight += lut[p, int(x & np.uint64(0xFF))]
        keys[c] = dist[i] + weight * scale
        ids[c] = i
        c += 1
    order = np.argsort(keys, kind="mergesort")  # stable: ties stay in id order
    for r in range(kk):
        out_ids[r] = ids[order[r]]
    group = -1
    previous = -1.0
    for r in range(seen):
        key = keys[order[r]]
        if r == 0 or key != previous:
            if r >= kk:
                break
            group += 1
            previous = key
        out_groups[group, gclass[ids[order[r]]]] += 1


@njit(cache=True, parallel=True)
def asymmetric_kernel(qwords, luts, gwords, width, bits, gclass, qsplit, ids, groups):  # type: ignore[no-untyped-def]
    """Per query: ids (Q, kk) and tie-group class counts (Q, kk, nclass, zeros on entry) of the
    asymmetric ranking, one task per query block (qsplit bounds)."""
    kk = ids.shape[1]
    for task in prange(qsplit.shape[0] - 1):
        for q in range(qsplit[task], qsplit[task + 1]):
            _asymmetric_one(qwords[q], luts[q], gwords, width, bits, kk, gclass, ids[q], groups[q])
