"""numba kernel behind `dnhcli.index.search.topk_ties`: the k nearest codes and the whole tie at
the cut in one scan (stage 1 of a two-stage search).

It is the top-k scan of `search_kernels` with one change: a code is accepted while d <= t, not
d < t, where t is the largest distance that can still be at or before the k-th place; t drops
by one whenever k accepted codes lie strictly below it. Each task keeps at most `cap` candidates per
query; a task whose tie does not fit says so (`over`), and the caller then finds that query's
candidates by top-k and a range search instead (collapsed codes: a tie of many thousands).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from dnhcli.index.search_kernels import BLOCK, CHUNK, SUB, _count_below, _distance, _load_words


@njit(cache=True)
def _compact(cand_d, cand_i, n, thr):  # type: ignore[no-untyped-def]
    """Drop the candidates with d > thr (order kept); returns how many are left."""
    kept = 0
    for j in range(n):
        if cand_d[j] <= thr:
            cand_d[kept] = cand_d[j]
            cand_i[kept] = cand_i[j]
            kept += 1
    return kept


@njit(cache=True)
def _ties_task(qwords, flat, width, lo, hi, k, bits, cap, out_d, out_i, out_n, over):  # type: ignore[no-untyped-def]
    """Codes [lo, hi) for each query row: every code with d <= t (t: the k-th smallest distance of
    this range), in id order, into out_d/out_i (Q, cap) and out_n; over[q] if they do not fit."""
    nq, nw = qwords.shape
    hist = np.zeros((nq, bits + 2), np.int64)
    thr = np.full(nq, bits, np.int64)  # accept d <= thr
    below = np.zeros(nq, np.int64)  # accepted codes with d < thr
    buf = np.empty((nw, CHUNK), np.uint64)
    for start in range(lo, hi, CHUNK):
        m = min(CHUNK, hi - start)
        _load_words(flat, width, start, m, buf)
        for q in range(nq):
            if over[q]:
                continue
            q0 = qwords[q, 0]
            q1 = qwords[q, nw - 1]
            for b0 in range(0, m, BLOCK):
                b1 = min(b0 + BLOCK, m)
                if _count_below(q0, q1, buf, b0, b1, thr[q] + 1) == 0:
                    continue
                for s0 in range(b0, b1, SUB):
                    s1 = min(s0 + SUB, b1)
                    if _count_below(q0, q1, buf, s0, s1, thr[q] + 1) == 0:
                        continue
                    for i in range(s0, s1):
                        d = _distance(q0, q1, buf, i)
                        if d > thr[q] or over[q]:
                            continue
                        hist[q, d] += 1
                        if d < thr[q]:
                            below[q] += 1
                        while thr[q] > 0 and below[q] >= k:  # k codes at d <= thr - 1: t <= thr - 1
                            thr[q] -= 1
                            below[q] -= hist[q, thr[q]]
                        if out_n[q] == cap:
                            out_n[q] = _compact(out_d[q], out_i[q], out_n[q], thr[q])
                            if out_n[q] == cap:
                                over[q] = True
                                continue
                        out_d[q, out_n[q]] = d
                        out_i[q, out_n[q]] = start + i
                        out_n[q] += 1
    for q in range(nq):
        out_n[q] = _compact(out_d[q], out_i[q], out_n[q], thr[q])


@njit(cache=True, parallel=True)
def ties_kernel(qwords, flat, width, k, bits, cap, qsplit, dsplit):  # type: ignore[no-untyped-def]
    """Per (database range, query): candidates (ns, Q, cap), their count (ns, Q) and overflow."""
    nq = qwords.shape[0]
    nqb = qsplit.shape[0] - 1
    ns = dsplit.shape[0] - 1
    part_d = np.empty((ns, nq, cap), np.int32)
    part_i = np.empty((ns, nq, cap), np.int64)
    part_n = np.zeros((ns, nq), np.int64)
    over = np.zeros((ns, nq), np.bool_)
    for task in prange(nqb * ns):
        qb = task // ns
        s = task % ns
        a, b = qsplit[qb], qsplit[qb + 1]
        _ties_task(qwords[a:b], flat, width, dsplit[s], dsplit[s + 1], k, bits, cap,
                   part_d[s, a:b], part_i[s, a:b], part_n[s, a:b], over[s, a:b])
    return part_d, part_i, part_n, over
