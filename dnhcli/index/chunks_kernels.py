"""The numba kernel of multi-index hashing (`dnhcli.index.chunks`): one query's candidates from
the sorted chunk tables, each counted once and checked exactly. Compiled with cache=True."""

from __future__ import annotations

import numpy as np
from numba import njit

_POP8 = np.array([bin(i).count("1") for i in range(256)], np.int32)


@njit(cache=True)
def _chunk(codes, row, k):  # type: ignore[no-untyped-def]
    """16-bit chunk k of a packed code (a missing last byte counts as zero)."""
    high = np.int32(codes[row, 2 * k]) << 8
    return high | (np.int32(codes[row, 2 * k + 1]) if 2 * k + 1 < codes.shape[1] else 0)


@njit(cache=True)
def query_kernel(sorted_, order, codes, qchunks, qcode, values, share, radius, most,  # type: ignore[no-untyped-def]
                 out_d, out_i):
    """Fill out_d/out_i with the codes within `radius` of the query (unsorted) and return how
    many; -1 when the lookups hold more than `most` candidates. `values[i]` are the chunk values
    within `share` bits of the query's chunk i; a candidate found through chunk i is skipped if
    an earlier chunk already matches it within `share` (it was counted there)."""
    m, nbytes = sorted_.shape[0], codes.shape[1]
    lows = np.empty(values.shape, np.int64)
    highs = np.empty(values.shape, np.int64)
    total = 0
    for i in range(m):
        for v in range(values.shape[1]):
            lows[i, v] = np.searchsorted(sorted_[i], values[i, v])
            highs[i, v] = np.searchsorted(sorted_[i], values[i, v], side="right")
            total += highs[i, v] - lows[i, v]
    if total > most:
        return -1
    count = 0
    for i in range(m):
        for v in range(values.shape[1]):
            for j in range(lows[i, v], highs[i, v]):
                row = order[i, j]
                seen = False
                for k in range(i):
                    x = _chunk(codes, row, k) ^ qchunks[k]
                    if _POP8[x >> 8] + _POP8[x & 255] <= share:
                        seen = True
                        break
                if seen:
                    continue
                d = 0
                for b in range(nbytes):
                    d += _POP8[codes[row, b] ^ qcode[b]]
                if d <= radius:
                    out_d[count] = d
                    out_i[count] = row
                    count += 1
    return count
