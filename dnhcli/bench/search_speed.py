"""Search speed: dnh's exact Hamming top-k against FAISS `IndexBinaryFlat`, side by side.

FAISS runs on the same codes (e.g. 48 bits) and on the codes zero-padded to 64 bits, where its
popcount kernel is fastest. The three run interleaved round by round on the same queries and
threads, with a short pause between them (dnh and FAISS bring two OpenMP runtimes whose idle
threads spin for a while after each call); medians are reported. Distances must be identical.
FAISS is an optional dependency of the benchmark only.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from dnhcli.errors import DnhError
from dnhcli.index.search import range_search, set_threads, topk

# Seconds between two different engines: lets the other OpenMP runtime's threads stop spinning.
_PAUSE = 0.05
# A timed measurement repeats a short call until it lasts this long (Q = 1 takes about a millisecond).
_MIN_SECONDS = 0.05


@dataclass(frozen=True)
class SearchSpeed:
    """One benchmark row: median milliseconds of dnh, FAISS and FAISS on 64-bit padded codes."""

    kind: str  # "topk" or "range"
    n: int
    bits: int
    queries: int
    k: int  # k for top-k, the radius for range search
    threads: int
    dnh_ms: float
    faiss_ms: float
    faiss64_ms: float
    distances_equal: bool

    def ns_per_code(self, ms: float) -> float:
        return ms * 1e6 / (self.n * self.queries)

    @property
    def ratio(self) -> float:
        return self.faiss_ms / self.dnh_ms

    @property
    def ratio64(self) -> float:
        return self.faiss64_ms / self.dnh_ms

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "n": self.n, "bits": self.bits, "queries": self.queries,
                "k" if self.kind == "topk" else "radius": self.k, "threads": self.threads,
                "dnh_ms": round(self.dnh_ms, 3), "faiss_ms": round(self.faiss_ms, 3),
                "faiss64_ms": round(self.faiss64_ms, 3),
                "dnh_ns_per_code": round(self.ns_per_code(self.dnh_ms), 4),
                "faiss_ns_per_code": round(self.ns_per_code(self.faiss_ms), 4),
                "faiss64_ns_per_code": round(self.ns_per_code(self.faiss64_ms), 4),
                "ratio_faiss_over_dnh": round(self.ratio, 3),
                "ratio_faiss64_over_dnh": round(self.ratio64, 3),
                "distances_equal": self.distances_equal}


def import_faiss() -> Any:
    """The faiss module, or a DnhError saying how to install it."""
    try:
        import faiss
    except ImportError as exc:
        raise DnhError("the search benchmark compares against FAISS, which is not installed",
                       hint="pip install faiss-cpu (only the benchmark needs it)") from exc
    return faiss


def random_codes(n: int, bits: int, seed: int) -> np.ndarray:
    """(n, bits/8) uint8 uniformly random packed codes from a seeded generator."""
    return np.random.default_rng(seed).integers(0, 256, (n, bits // 8), dtype=np.uint8)


def pad64(codes: np.ndarray) -> np.ndarray:
    """Codes zero-padded to a multiple of 64 bits (Hamming distances are unchanged)."""
    width = -(-codes.shape[1] // 8) * 8
    out = np.zeros((len(codes), width), np.uint8)
    out[:, :codes.shape[1]] = codes
    return out


def _timed(run: Callable[[], Any]) -> float:
    """Seconds per call of `run`, repeated until the measurement lasts _MIN_SECONDS."""
    calls = 0
    tick = time.perf_counter()
    while True:
        run()
        calls += 1
        elapsed = time.perf_counter() - tick
        if elapsed >= _MIN_SECONDS:
            return elapsed / calls


def _median_ms(runners: dict[str, Callable[[], Any]], rounds: int) -> dict[str, float]:
    seconds: dict[str, list[float]] = {name: [] for name in runners}
    for _ in range(rounds):
        for name, run in runners.items():
            time.sleep(_PAUSE)
            seconds[name].append(_timed(run))
    return {name: statistics.median(values) * 1e3 for name, values in seconds.items()}


def _faiss_index(faiss: Any, codes: np.ndarray) -> Any:
    index = faiss.IndexBinaryFlat(codes.shape[1] * 8)
    index.add(codes)
    return index


def _range_equal(ours: tuple[np.ndarray, np.ndarray, np.ndarray], theirs: Any) -> bool:
    lims, dist, ids = ours
    f_lims, f_dist, f_ids = theirs
    if not np.array_equal(lims, f_lims.astype(np.int64)):
        return False
    for q in range(len(lims) - 1):  # FAISS does not sort its hits: compare sorted (d, id) pairs
        a, b = lims[q], lims[q + 1]
        order = np.lexsort((f_ids[a:b], f_dist[a:b]))
        if not np.array_equal(dist[a:b], f_dist[a:b][order]):
            return False
        if not np.array_equal(ids[a:b], f_ids[a:b][order]):
            return False
    return True


def benchmark_search(sizes: Iterable[int], bits: int = 48, queries: Iterable[int] = (1, 1000),
                     ks: Iterable[int] = (10, 100), threads: Iterable[int] = (1, 2), rounds: int = 3,
                     seed: int = 0, radius: int | None = 2,
                     progress: Callable[[SearchSpeed], None] | None = None) -> list[SearchSpeed]:
    """Benchmark rows for every size x threads x queries x k (and a range-search row per size)."""
    faiss = import_faiss()
    rows: list[SearchSpeed] = []
    for n in sizes:
        codes = random_codes(n, bits, seed)
        padded = pad64(codes)
        index, index64 = _faiss_index(faiss, codes), _faiss_index(faiss, padded)
        all_queries = random_codes(max(queries), bits, seed + 1)
        for nthreads in threads:
            set_threads(nthreads)
            faiss.omp_set_num_threads(nthreads)
            cases = [("topk", nq, k) for nq in queries for k in ks]
            if radius is not None:
                cases.append(("range", max(queries), radius))
            for kind, nq, k in cases:
                rows.append(_case(kind, index, index64, codes, padded, all_queries[:nq], k, nthreads, rounds))
                if progress is not None:
                    progress(rows[-1])
        del index, index64
    set_threads(None)
    return rows


def _case(kind: str, index: Any, index64: Any, codes: np.ndarray, padded: np.ndarray,
          q: np.ndarray, k: int, nthreads: int, rounds: int) -> SearchSpeed:
    q64 = pad64(q)
    if kind == "topk":
        runners: dict[str, Callable[[], Any]] = {
            "dnh": lambda: topk(q, codes, k), "faiss": lambda: index.search(q, k),
            "faiss64": lambda: index64.search(q64, k)}
    else:
        # queries near stored codes (one bit flipped), so that a small radius finds something
        near = codes[np.linspace(0, len(codes) - 1, len(q)).astype(np.int64)].copy()
        near[:, 0] ^= 1
        q, q64 = near, pad64(near)
        runners = {"dnh": lambda: range_search(q, codes, k),
                   "faiss": lambda: index.range_search(q, k + 1),  # FAISS keeps d < radius
                   "faiss64": lambda: index64.range_search(q64, k + 1)}
    # warm-up (compilation, allocator) on the real sizes, which also checks the results
    results = {name: run() for name, run in runners.items()}
    if kind == "topk":
        equal = all(np.array_equal(results["dnh"][0], results[name][0]) for name in ("faiss", "faiss64"))
    else:
        equal = all(_range_equal(results["dnh"], results[name]) for name in ("faiss", "faiss64"))
    if not equal:
        raise AssertionError(f"dnh {kind} distances differ from FAISS's (N={len(codes)}, k={k})")
    ms = _median_ms(runners, rounds)
    return SearchSpeed(kind=kind, n=len(codes), bits=codes.shape[1] * 8, queries=len(q), k=k,
                       threads=nthreads, dnh_ms=ms["dnh"], faiss_ms=ms["faiss"], faiss64_ms=ms["faiss64"],
                       distances_equal=equal)
