"""numba kernels behind `dnhcli.index.search`: exact Hamming top-k and range search.

Layout: a task scans the codes [lo, hi) of one database range for a block of queries. It
copies CHUNK codes at a time into a small uint64 buffer (one or two words per code, read with
unaligned 8-byte loads, so 48-bit codes need no padded copy of the database) that stays in L1
while every query of the block scans it. The scan first counts, vectorised over BLOCK codes, how
many codes beat the query's current threshold; only blocks with a hit are rescanned one code at a
time. Distances are small integers (0..K), so the top-k keeps a histogram of accepted distances:
the threshold t is the smallest distance at which k items have been seen, and a later code is
accepted only if d < t (a later code with d == t has a larger id, so it loses the tie). Candidate
lists are always in id order within equal distances, and a stable counting sort turns them into
(distance, id) order: no comparison sort of N items anywhere.

All functions are compiled with cache=True: the first call in a fresh environment compiles them.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.extending import intrinsic

CHUNK = 2048  # codes per L1-resident buffer (16 KiB at 64 bits)
BLOCK = 128  # codes per vectorised hit check
SUB = 32  # codes per finer check inside a block with a hit


@intrinsic
def _popcount(typingctx, x):  # type: ignore[no-untyped-def]
    """llvm.ctpop on a uint64 (vectorised by LLVM into the AVX2 nibble-lookup popcount)."""
    if x != types.uint64:
        return None

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        return builder.ctpop(args[0])

    return types.uint64(types.uint64), codegen


@intrinsic
def _load_u64(typingctx, array, offset):  # type: ignore[no-untyped-def]
    """Unaligned native-endian 8-byte load from a 1-D uint8 array at a byte offset (unchecked)."""
    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        data = context.make_array(signature.args[0])(context, builder, args[0]).data
        pointer = builder.bitcast(builder.gep(data, [args[1]]), ir.IntType(64).as_pointer())
        return builder.load(pointer, align=1)

    return types.uint64(array, types.intp), codegen


@njit(cache=True)
def _load_words(flat, width, lo, m, out):  # type: ignore[no-untyped-def]
    """Codes lo..lo+m of a flat (N * width) byte array into out[w, i] uint64 words (zero-padded)."""
    nbytes = flat.shape[0]
    for w in range(out.shape[0]):
        size = min(8, width - 8 * w)
        mask = np.uint64(0xFFFFFFFFFFFFFFFF) >> np.uint64(64 - 8 * size)
        first = lo * width + 8 * w
        # codes whose 8-byte load stays inside the buffer; the last few are assembled bytewise
        fast = min(m, max(0, (nbytes - 8 - first) // width + 1))
        for i in range(fast):
            out[w, i] = _load_u64(flat, first + i * width) & mask
        for i in range(fast, m):
            word = np.uint64(0)
            for j in range(size):
                word |= np.uint64(flat[first + i * width + j]) << np.uint64(8 * j)
            out[w, i] = word


@njit(cache=True)
def _select(cand_d, cand_i, n, k, bits, out_d, out_i):  # type: ignore[no-untyped-def]
    """The min(k, n) smallest candidates by (distance, list order), sorted; returns their count.

    A stable counting sort: the candidates must already be in id order within equal distances.
    """
    hist = np.zeros(bits + 2, np.int64)
    for j in range(n):
        hist[cand_d[j]] += 1
    t = 0
    below = 0  # items with distance < t
    while t <= bits and below + hist[t] < k:
        below += hist[t]
        t += 1
    offsets = np.empty(bits + 2, np.int64)
    total = 0
    for d in range(bits + 1):
        offsets[d] = total
        total += hist[d]
    need = k - below  # items taken at distance t
    count = 0
    for j in range(n):
        d = cand_d[j]
        if d < t or (d == t and need > 0):
            if d == t:
                need -= 1
            pos = offsets[d]
            offsets[d] += 1
            out_d[pos] = d
            out_i[pos] = cand_i[j]
            count += 1
    # positions were reserved for all items below t and for min(need, hist[t]) at t: contiguous
    return count


@njit(cache=True, inline="always")
def _distance(q0, q1, buf, i):  # type: ignore[no-untyped-def]
    """Hamming distance of code i of the buffer (one or two words) to the query words."""
    d = np.int64(_popcount(q0 ^ buf[0, i]))
    if buf.shape[0] == 2:
        d += np.int64(_popcount(q1 ^ buf[1, i]))
    return d


@njit(cache=True, inline="always")
def _count_below(q0, q1, buf, b0, b1, t):  # type: ignore[no-untyped-def]
    """How many buffer codes b0..b1-1 lie at distance < t (a vectorised loop)."""
    hits = 0
    if buf.shape[0] == 1:
        for i in range(b0, b1):
            hits += np.int64(_popcount(q0 ^ buf[0, i])) < t
    else:
        for i in range(b0, b1):
            hits += np.int64(_popcount(q0 ^ buf[0, i]) + _popcount(q1 ^ buf[1, i])) < t
    return hits


@njit(cache=True)
def _topk_task(qwords, flat, width, lo, hi, k, bits, out_d, out_i, out_n):  # type: ignore[no-untyped-def]
    """Top-k of codes [lo, hi) for each query word row; writes out_d/out_i (Q, k) and out_n (Q,)."""
    nq, nw = qwords.shape
    cap = max(2 * k, k + 256)
    cand_d = np.empty((nq, cap), np.int32)
    cand_i = np.empty((nq, cap), np.int64)
    ncand = np.zeros(nq, np.int64)
    hist = np.zeros((nq, bits + 2), np.int64)
    thr = np.full(nq, bits + 1, np.int64)  # accept d < thr
    below = np.zeros(nq, np.int64)  # accepted items with d < thr
    tmp_d = np.empty(cap, np.int32)
    tmp_i = np.empty(cap, np.int64)
    buf = np.empty((nw, CHUNK), np.uint64)
    for start in range(lo, hi, CHUNK):
        m = min(CHUNK, hi - start)
        _load_words(flat, width, start, m, buf)
        for q in range(nq):
            q0 = qwords[q, 0]
            q1 = qwords[q, nw - 1]
            for b0 in range(0, m, BLOCK):
                b1 = min(b0 + BLOCK, m)
                if _count_below(q0, q1, buf, b0, b1, thr[q]) == 0:
                    continue
                for s0 in range(b0, b1, SUB):
                    s1 = min(s0 + SUB, b1)
                    if _count_below(q0, q1, buf, s0, s1, thr[q]) == 0:
                        continue
                    # written out here: a call taking arrays costs reference counting per code
                    for i in range(s0, s1):
                        d = _distance(q0, q1, buf, i)
                        if d >= thr[q]:
                            continue
                        hist[q, d] += 1
                        below[q] += 1
                        while below[q] >= k:  # lower the threshold while k items stay below it
                            thr[q] -= 1
                            below[q] -= hist[q, thr[q]]
                        if ncand[q] == cap:  # keep the best k, in (distance, id) order
                            c = _select(cand_d[q], cand_i[q], cap, k, bits, tmp_d, tmp_i)
                            cand_d[q, :c] = tmp_d[:c]
                            cand_i[q, :c] = tmp_i[:c]
                            ncand[q] = c
                        cand_d[q, ncand[q]] = d
                        cand_i[q, ncand[q]] = start + i
                        ncand[q] += 1
    for q in range(nq):
        out_n[q] = _select(cand_d[q], cand_i[q], ncand[q], k, bits, out_d[q], out_i[q])


@njit(cache=True, parallel=True)
def topk_kernel(qwords, flat, width, n, k, bits, qsplit, dsplit):  # type: ignore[no-untyped-def]
    """Exact top-k over tasks = query blocks (qsplit bounds) x database ranges (dsplit bounds)."""
    nq = qwords.shape[0]
    nqb = qsplit.shape[0] - 1
    ns = dsplit.shape[0] - 1
    part_d = np.empty((ns, nq, k), np.int32)
    part_i = np.empty((ns, nq, k), np.int64)
    part_n = np.empty((ns, nq), np.int64)
    for task in prange(nqb * ns):
        qb = task // ns
        s = task % ns
        a, b = qsplit[qb], qsplit[qb + 1]
        _topk_task(qwords[a:b], flat, width, dsplit[s], dsplit[s + 1], k, bits,
                   part_d[s, a:b], part_i[s, a:b], part_n[s, a:b])
    kk = min(k, n)
    dist = np.empty((nq, kk), np.int32)
    ids = np.empty((nq, kk), np.int64)
    if ns == 1:
        dist[:] = part_d[0, :, :kk]
        ids[:] = part_i[0, :, :kk]
        return dist, ids
    for q in prange(nq):
        # ranges are in id order, each sorted by (d, id): the concatenation is id-ordered per d
        cd = np.empty(ns * k, np.int32)
        ci = np.empty(ns * k, np.int64)
        c = 0
        for s in range(ns):
            m = part_n[s, q]
            cd[c:c + m] = part_d[s, q, :m]
            ci[c:c + m] = part_i[s, q, :m]
            c += m
        _select(cd, ci, c, kk, bits, dist[q], ids[q])
    return dist, ids


@njit(cache=True)
def _range_task(qwords, flat, width, lo, hi, radius, counts, flags, out_d, out_i, offsets):  # type: ignore[no-untyped-def]
    """Range scan of codes [lo, hi). Counting pass (no offsets): adds hits per query to counts and
    flags the (query, chunk) pairs with a hit. Writing pass (offsets, one per query): rescans the
    flagged chunks only and writes their hits in id order to out_d/out_i from those positions."""
    nq, nw = qwords.shape
    write = offsets.shape[0] > 0
    pos = offsets.copy()
    buf = np.empty((nw, CHUNK), np.uint64)
    for c, start in enumerate(range(lo, hi, CHUNK)):
        m = min(CHUNK, hi - start)
        if write:
            wanted = False
            for q in range(nq):
                wanted |= flags[q, c] != 0
            if not wanted:
                continue
        _load_words(flat, width, start, m, buf)
        for q in range(nq):
            q0 = qwords[q, 0]
            q1 = qwords[q, nw - 1]
            if not write:
                hits = _count_below(q0, q1, buf, 0, m, radius + 1)
                counts[q] += hits
                flags[q, c] = hits > 0
                continue
            if flags[q, c] == 0:
                continue
            for s0 in range(0, m, SUB):
                s1 = min(s0 + SUB, m)
                if _count_below(q0, q1, buf, s0, s1, radius + 1) == 0:
                    continue
                for i in range(s0, s1):
                    d = _distance(q0, q1, buf, i)
                    if d <= radius:
                        out_d[pos[q]] = d
                        out_i[pos[q]] = start + i
                        pos[q] += 1


@njit(cache=True, parallel=True)
def range_kernel(qwords, flat, width, radius, bits, qsplit, dsplit):  # type: ignore[no-untyped-def]
    """FAISS-style range search: (lims, distances, ids), each query's hits sorted by (d, id)."""
    nq = qwords.shape[0]
    nqb = qsplit.shape[0] - 1
    ns = dsplit.shape[0] - 1
    counts = np.zeros((ns, nq), np.int64)
    chunks = 0
    for s in range(ns):
        chunks = max(chunks, (dsplit[s + 1] - dsplit[s] + CHUNK - 1) // CHUNK)
    flags = np.zeros((ns, nq, chunks), np.uint8)
    no_offsets = np.empty(0, np.int64)
    dummy_d = np.empty(0, np.int32)
    dummy_i = np.empty(0, np.int64)
    for task in prange(nqb * ns):
        qb, s = task // ns, task % ns
        a, b = qsplit[qb], qsplit[qb + 1]
        _range_task(qwords[a:b], flat, width, dsplit[s], dsplit[s + 1], radius, counts[s, a:b],
                    flags[s, a:b], dummy_d, dummy_i, no_offsets)
    lims = np.zeros(nq + 1, np.int64)
    starts = np.empty((ns, nq), np.int64)
    total = 0
    for q in range(nq):
        lims[q] = total
        for s in range(ns):
            starts[s, q] = total
            total += counts[s, q]
    lims[nq] = total
    dist = np.empty(total, np.int32)
    ids = np.empty(total, np.int64)
    for task in prange(nqb * ns):
        qb, s = task // ns, task % ns
        a, b = qsplit[qb], qsplit[qb + 1]
        _range_task(qwords[a:b], flat, width, dsplit[s], dsplit[s + 1], radius, counts[s, a:b],
                    flags[s, a:b], dist, ids, starts[s, a:b])
    for q in prange(nq):  # hits are in id order: a stable counting sort by distance finishes
        a, b = lims[q], lims[q + 1]
        if b - a > 1:
            tmp_d = np.empty(b - a, np.int32)
            tmp_i = np.empty(b - a, np.int64)
            _select(dist[a:b], ids[a:b], b - a, b - a, bits, tmp_d, tmp_i)
            dist[a:b] = tmp_d
            ids[a:b] = tmp_i
    return lims, dist, ids
