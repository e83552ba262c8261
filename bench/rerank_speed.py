"""Two-stage search against Hamming-only search on one database (issue 24): one query at a time,
side by side in one run, with 1 and 2 threads.

    python bench/rerank_speed.py [--items 1000000] [--k 10] [--oversample 10] [--out /tmp/dnh-rerank]

Builds a folder database of `--items` items (48-bit codes and int8 re-rank vectors) whose codes
are clustered like a trained model's (codes of 2,000 centres with a few bits flipped, so stage 1
meets real ties) and times, per query (median of `--queries` single-query searches after a
warm-up): `search` (Hamming top k), `search_two_stage` (k x oversample candidates, the whole tie
at the cut, re-scored), the two timed alternately query by query, and the time of fetching the
candidates' vectors. Prints the ratio
two-stage / Hamming for each thread count, the bytes per item, and the CPU.
"""

from __future__ import annotations

import argparse
import platform
import shutil
import time
from pathlib import Path

import numpy as np

from dnhcli.index import search as kernels
from dnhcli.index.codes import pack_codes, unpack_codes
from dnhcli.index.rerank import quantize_vectors
from dnhcli.stores.hashdb import HashDB

BITS = 48


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def build(path: Path, items: int, seed: int = 0) -> None:
    """The database of `items` clustered codes at `path` (kept from an earlier run if the same)."""
    if (path / "manifest.json").exists():
        with HashDB.open(path, verify=False) as db:
            if len(db) == items and db.has_vectors and db.model_fingerprint == f"rerank-bench-{seed}":
                return
    rng = np.random.default_rng(seed)
    centres = rng.integers(0, 2, (2000, BITS), dtype=np.uint8)
    shutil.rmtree(path, ignore_errors=True)
    with HashDB.create(path, BITS, f"rerank-bench-{seed}", vectors=True) as db:
        for start in range(0, items, 250_000):
            n = min(250_000, items - start)
            bits = centres[rng.integers(0, len(centres), n)]
            flips = rng.random((n, BITS)) < 0.04
            bits = bits ^ flips.astype(np.uint8)
            h = (bits.astype(np.float32) * 2 - 1) * rng.uniform(0.3, 1.0, (n, BITS)).astype(np.float32)
            db.add(pack_codes(bits), [{} for _ in range(n)], quantize_vectors(h))
        db.compact()


def median_ms(work, count: int) -> float:
    work(0)  # warm-up
    times = []
    for i in range(count):
        began = time.perf_counter()
        work(i)
        times.append(time.perf_counter() - began)
    return 1000 * float(np.median(times))


def paired_ms(first, second, count: int) -> tuple[float, float]:
    """Median ms of two searches timed alternately on the same queries (first(i), second(i), ...),
    so that a slower or faster stretch of the machine falls on both alike."""
    first(0), second(0)  # warm-up
    times: tuple[list[float], list[float]] = ([], [])
    for i in range(count):
        for work, out in ((first, times[0]), (second, times[1])):
            began = time.perf_counter()
            work(i)
            out.append(time.perf_counter() - began)
    return 1000 * float(np.median(times[0])), 1000 * float(np.median(times[1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--oversample", type=int, default=10)
    parser.add_argument("--queries", type=int, default=50)
    parser.add_argument("--out", type=Path, default=Path("/tmp/dnh-rerank"))
    args = parser.parse_args()
    build(args.out, args.items)
    kernels.warm_up()
    with HashDB.open(args.out, verify=False) as db:
        db.consolidate()
        rng = np.random.default_rng(1)
        picks = rng.integers(0, len(db), args.queries + 1)
        codes = db.codes()[picks]
        h = (unpack_codes(codes, BITS).astype(np.float32) * 2 - 1) * 0.8
        print(f"CPU: {cpu_name()}; {len(db):,} items, {BITS} bits, k={args.k}, oversample={args.oversample}")
        print(f"bytes per item: code {BITS // 8} + re-rank vector {BITS} (int8) = {BITS // 8 + BITS}")
        for threads in (1, 2):
            kernels.set_threads(threads)
            hamming, two = paired_ms(
                lambda i: db.search(codes[i:i + 1], args.k),
                lambda i: db.search_two_stage(codes[i:i + 1], h[i:i + 1], args.k, args.oversample),
                args.queries)
            lims, _, found = db.candidates(codes[:1], args.k * args.oversample)
            fetch = median_ms(lambda i, found=found: db.vectors(found), 5)
            print(f"threads {threads}: Hamming top-{args.k} {hamming:.2f} ms, two-stage {two:.2f} ms "
                  f"(ratio {two / hamming:.2f}x; {int(lims[-1])} candidates for query 0, their vectors "
                  f"fetched in {fetch:.3f} ms)")


if __name__ == "__main__":
    main()
