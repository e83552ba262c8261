"""Exact Hamming search over packed binary codes: top-k and range search (numba, multi-threaded).

numpy in, numpy out. Codes are (N, B) uint8 arrays packed as in `dnhcli.index.codes` (B = K/8
bytes, K a multiple of 8 in 8..128); a read-only `np.memmap` works as well as an ndarray and is
never copied when C-contiguous. Ids are row indices 0..N-1.

Ranking rule: ascending distance, ties by id, i.e.
exactly `np.argsort(dist, kind="stable")[:, :k]`.

Threads: all cores by default; `set_threads(n)` changes the default, and the `threads`
argument of a call overrides it for that call. The kernels are compiled by numba with
cache=True: the first call in a fresh environment compiles them (about 20 s for `topk` and
12 s more for `range_search` on 2 cores),
later processes load them from `__pycache__` in 0.6-1.3 s (numba builds its CPU target first).
So that a one-off command pays none of that, a process that has not loaded the kernels yet does
small searches (at most `SMALL_QUERIES` queries and `SMALL_WORK` query-code distances) in plain
numpy (`dnhcli.index.search_numpy`), with the same results, until those searches have cost it
`NUMPY_BUDGET` seconds in all, about what loading the kernels costs; then it loads them (the
rent-or-buy rule: a long-running process never spends more than twice the optimum).
`warm_up()` loads the kernels at once; `engine=` forces one path.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType
from typing import Literal

import numpy as np

from dnhcli.errors import InputError
from dnhcli.index.codes import validate_bits
from dnhcli.index.search_numpy import range_numpy, topk_numpy

Engine = Literal["auto", "numba", "numpy"]
ENGINES = ("auto", "numba", "numpy")
# A process without loaded kernels searches in numpy up to this many query-code distances (about
# 30 ms of numpy at most, against 0.6 s to load the kernels) and this many queries (numpy
# selects each query's top k in a Python loop).
SMALL_WORK = 1 << 21
SMALL_QUERIES = 64
NUMPY_BUDGET = 0.5  # seconds of numpy searches after which a process loads the kernels
_kernels_loaded = False
_numpy_seconds = 0.0

# Below this many codes a database range is not split further between threads.
_MIN_RANGE = 65536
# Tasks per thread: more tasks balance a noisy machine, fewer re-read the database less often.
_TASKS_PER_THREAD = 4


def _kernels() -> ModuleType:
    """The numba kernels (imported, and so loaded from numba's cache, on first use)."""
    global _kernels_loaded
    from dnhcli.index import search_kernels

    _kernels_loaded = True
    return search_kernels


def _use_numpy(engine: str, queries: int, codes: int) -> bool:
    if engine not in ENGINES:
        raise InputError(f"unknown search engine {engine!r}", hint=f"choose from {', '.join(ENGINES)}")
    small = queries <= SMALL_QUERIES and queries * codes <= SMALL_WORK
    cheap = not _kernels_loaded and _numpy_seconds < NUMPY_BUDGET
    return engine == "numpy" or (engine == "auto" and cheap and small)


@contextmanager
def _numpy_clock() -> Iterator[None]:
    """Add the time of one numpy search to the process's total."""
    global _numpy_seconds
    began = time.perf_counter()
    try:
        yield
    finally:
        _numpy_seconds += time.perf_counter() - began


def _check_thread_count(n: int | None) -> None:
    if n is not None and (isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1):
        raise InputError(f"thread count must be a positive integer, got {n!r}")


def set_threads(n: int | None) -> int:
    """Set the default thread count of later searches (None: all cores); returns the count."""
    import numba

    if n is None:
        n = numba.config.NUMBA_NUM_THREADS
    _check_thread_count(n)
    if n > numba.config.NUMBA_NUM_THREADS:
        raise InputError(f"thread count {n} exceeds the {numba.config.NUMBA_NUM_THREADS} available",
                         hint="set NUMBA_NUM_THREADS before starting Python to allow more")
    numba.set_num_threads(int(n))
    return int(n)


@contextmanager
def _threads(n: int | None) -> Iterator[int]:
    import numba

    old = numba.get_num_threads()
    if n is not None:
        set_threads(n)
    # dynamic scheduling of tasks: on a shared machine one thread may be slowed down
    old_chunk = numba.set_parallel_chunksize(1)
    try:
        yield numba.get_num_threads()
    finally:
        numba.set_parallel_chunksize(old_chunk)
        numba.set_num_threads(old)


def _check_codes(array: np.ndarray, what: str) -> np.ndarray:
    if not isinstance(array, np.ndarray):
        raise InputError(f"{what} must be a numpy array of packed uint8 codes, got {type(array).__name__}")
    if array.dtype != np.uint8:
        raise InputError(f"{what} must be packed uint8 codes, got dtype {array.dtype}",
                         hint="pack bits with dnhcli.index.codes.pack_codes")
    if array.ndim != 2:
        raise InputError(f"{what} must be a 2-D array (N, K/8), got shape {array.shape}")
    return array


def _validate(queries: np.ndarray, codes: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """Checked (queries, flat codes bytes, bits); the codes are viewed, copied only if strided."""
    queries = _check_codes(queries, "query codes")
    codes = _check_codes(codes, "database codes")
    if queries.shape[1] != codes.shape[1]:
        raise InputError(
            f"query codes have {queries.shape[1] * 8} bits but database codes have {codes.shape[1] * 8}",
            hint="hash the queries with the model that built the database")
    bits = validate_bits(codes.shape[1] * 8)
    flat = np.ascontiguousarray(codes).view(np.ndarray).reshape(-1)
    return queries, flat, bits


def _query_words(queries: np.ndarray, width: int) -> np.ndarray:
    """(Q, W) uint64 words of the queries, built exactly like the database words."""
    words = np.zeros((-(-width // 8), len(queries)), np.uint64)
    if len(queries):
        _kernels()._load_words(np.ascontiguousarray(queries).reshape(-1), width, 0, len(queries), words)
    return np.ascontiguousarray(words.T)


def _splits(nq: int, n: int, threads: int, per_thread: int = _TASKS_PER_THREAD
            ) -> tuple[np.ndarray, np.ndarray]:
    """Task bounds: query blocks for many queries, database ranges for few (both if needed)."""
    tasks = threads * per_thread if threads > 1 else 1
    qblocks = max(1, min(nq, tasks))
    ranges = max(1, min(-(-tasks // qblocks), n // _MIN_RANGE))
    # even integer bounds (np.linspace costs about 20 us a call: it showed in one-query searches)
    qsplit = np.arange(qblocks + 1, dtype=np.int64) * nq // qblocks
    dsplit = np.arange(ranges + 1, dtype=np.int64) * n // ranges
    return qsplit, dsplit


def topk(queries: np.ndarray, codes: np.ndarray, k: int, threads: int | None = None,
         engine: Engine = "auto") -> tuple[np.ndarray, np.ndarray]:
    """Exact k nearest codes by Hamming distance: (distances int32, ids int64), each (Q, min(k, N)).

    Sorted by ascending distance, ties by id (stable). `threads` overrides the default for this call.
    """
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise InputError(f"k must be a positive integer, got {k!r}")
    queries, flat, bits = _validate(queries, codes)
    nq, n, width = len(queries), len(codes), codes.shape[1]
    kk = min(int(k), n)
    if nq == 0 or n == 0:
        return np.empty((nq, kk), np.int32), np.empty((nq, kk), np.int64)
    if _use_numpy(engine, nq, n):
        _check_thread_count(threads)
        with _numpy_clock():
            return topk_numpy(queries, flat.reshape(n, width), kk)
    qwords = _query_words(queries, width)
    with _threads(threads) as nthreads:
        qsplit, dsplit = _splits(nq, n, nthreads)
        return _kernels().topk_kernel(qwords, flat, width, n, kk, bits, qsplit, dsplit)


def range_search(queries: np.ndarray, codes: np.ndarray, radius: int, threads: int | None = None,
                 engine: Engine = "auto") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All codes within Hamming distance <= radius, FAISS-style: (lims int64 (Q+1,), distances
    int32, ids int64); query q's results are [lims[q], lims[q+1]), sorted by (distance, id)."""
    if isinstance(radius, bool) or not isinstance(radius, (int, np.integer)) or radius < 0:
        raise InputError(f"radius must be a non-negative integer, got {radius!r}")
    queries, flat, bits = _validate(queries, codes)
    nq, n, width = len(queries), len(codes), codes.shape[1]
    if nq == 0 or n == 0:
        return np.zeros(nq + 1, np.int64), np.empty(0, np.int32), np.empty(0, np.int64)
    if _use_numpy(engine, nq, n):
        _check_thread_count(threads)
        with _numpy_clock():
            return range_numpy(queries, flat.reshape(n, width), min(int(radius), bits))
    qwords = _query_words(queries, width)
    with _threads(threads) as nthreads:
        qsplit, dsplit = _splits(nq, n, nthreads)
        return _kernels().range_kernel(qwords, flat, width, min(int(radius), bits), bits, qsplit, dsplit)


def topk_ties(queries: np.ndarray, codes: np.ndarray, k: int, threads: int | None = None,
              engine: Engine = "auto") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The k nearest codes and the whole tie at the cut: every code whose distance is at most
    that of the k-th nearest, FAISS-style (lims int64 (Q+1,), distances int32, ids int64), each
    query's sorted by (distance, id). Stage 1 of a two-stage search (`dnhcli.index.rerank`).

    One scan (`ties_kernels`); a query whose tie is too large for the scan's buffers gets its
    candidates from `topk` and `range_search` instead (the same items)."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise InputError(f"k must be a positive integer, got {k!r}")
    queries, flat, bits = _validate(queries, codes)
    nq, n, width = len(queries), len(codes), codes.shape[1]
    if nq == 0 or n == 0:
        return np.zeros(nq + 1, np.int64), np.empty(0, np.int32), np.empty(0, np.int64)
    k = min(int(k), n)
    if _use_numpy(engine, nq, n):
        return _ties_by_range(queries, codes, k, threads, engine)
    from dnhcli.index.ties_kernels import ties_kernel

    qwords = _query_words(queries, width)
    with _threads(threads) as nthreads:
        # one database range per thread: each range keeps its own whole tie at its own cut, so
        # more ranges than threads only add candidates (a 1-query search took 3x longer with 4)
        qsplit, dsplit = _splits(nq, n, nthreads, per_thread=1)
        part_d, part_i, part_n, over = ties_kernel(qwords, flat, width, k, bits, max(4 * k, k + 1024),
                                                   qsplit, dsplit)
    if len(part_n) == 1 and not over.any():  # one database range: each row is the answer, in id order
        rows_d = [part_d[0, q, :part_n[0, q]] for q in range(nq)]
        rows_i = [part_i[0, q, :part_n[0, q]] for q in range(nq)]
    else:
        rows_d, rows_i = [], []
        for q in range(nq):
            if over[:, q].any():
                _, d, i = _ties_by_range(queries[q:q + 1], codes, k, threads, engine)
            else:
                d = np.concatenate([part_d[s, q, :part_n[s, q]] for s in range(len(part_n))])
                i = np.concatenate([part_i[s, q, :part_n[s, q]] for s in range(len(part_n))])
                cut = np.partition(d, k - 1)[k - 1]  # each range kept its own tie: cut the union
                keep = d <= cut
                d, i = d[keep], i[keep]
            rows_d.append(d)
            rows_i.append(i)
    lims = np.zeros(nq + 1, np.int64)
    np.cumsum([len(d) for d in rows_d], out=lims[1:])
    dist = np.concatenate(rows_d).astype(np.int32, copy=False)
    ids = np.concatenate(rows_i).astype(np.int64, copy=False)
    row = np.repeat(np.arange(nq), np.diff(lims))
    order = np.lexsort((ids, dist, row))  # (distance, id) within each query
    return lims, dist[order], ids[order]


def _ties_by_range(queries: np.ndarray, codes: np.ndarray, k: int, threads: int | None,
                   engine: Engine) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`topk_ties` by two scans: the k-th distance by `topk`, then a range search up to it."""
    dist, _ = topk(queries, codes, k, threads, engine)
    cut = dist[:, -1].astype(np.int64)
    return within_cut(cut, *range_search(queries, codes, int(cut.max()), threads, engine))


def within_cut(cut: np.ndarray, lims: np.ndarray, found: np.ndarray, ids: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Of a FAISS-style range search's results, those at a distance no larger than each query's
    `cut` (Q,): (lims int64, distances int32, ids int64), in the order given."""
    nq = len(cut)
    row = np.repeat(np.arange(nq), np.diff(lims))
    keep = found <= np.asarray(cut, np.int64)[row]
    out = np.zeros(nq + 1, np.int64)
    np.cumsum(np.bincount(row[keep], minlength=nq), out=out[1:])
    return out, np.asarray(found[keep], np.int32), np.asarray(ids[keep], np.int64)


def warm_up() -> None:
    """Compile the kernels into numba's cache (or load them from it) for the array kinds the
    database passes: writable arrays and read-only memory maps. `make setup` calls this, so
    that the first real search does not pay the compilation (about 30 s)."""
    codes = np.zeros((4, 6), np.uint8)
    frozen = codes.copy()
    frozen.flags.writeable = False
    for database in (codes, frozen):
        topk(codes[:1], database, 2, engine="numba")
        topk_ties(codes[:1], database, 2, engine="numba")
        range_search(codes[:1], database, 1, engine="numba")
