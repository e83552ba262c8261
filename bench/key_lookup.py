"""Key lookups and deletions against a large hash database (issue 14): the key index answers
without a scan, and search with deleted items stays exact.

    python bench/key_lookup.py [--items 1000000] [--segments 4] [--out /tmp/dnh-keys]

Builds a database of random 48-bit codes, each with a `file:...` key, in `--segments`
appends; times `find` for 1,000 stored and 1,000 absent keys (per key, median of 5), the same
lookups done by scanning the metadata for comparison (on a 10,000-item sample, scaled), and a
top-10 search before and after deleting 1,000 items.
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

import numpy as np

from dnhcli.stores.hashdb import HashDB


def _best(work, repeat: int = 5) -> float:
    times = []
    for _ in range(repeat):
        began = time.perf_counter()
        work()
        times.append(time.perf_counter() - began)
    return float(np.median(times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--segments", type=int, default=4)
    parser.add_argument("--out", type=Path, default=Path("/tmp/dnh-keys"))
    args = parser.parse_args()
    shutil.rmtree(args.out, ignore_errors=True)
    rng = np.random.default_rng(0)
    per = args.items // args.segments
    began = time.perf_counter()
    with HashDB.create(args.out, 48) as db:
        for s in range(args.segments):
            codes = rng.integers(0, 256, (per, 6), dtype=np.uint8)
            db.add(codes, [{"source": f"scans/{s}/{i}.png", "key": f"file:scans/{s}/{i}.png"}
                           for i in range(per)])
    built = time.perf_counter() - began
    with HashDB.open(args.out) as db:
        n = len(db)
        stored = [f"file:scans/{s}/{i}.png" for s, i in zip(rng.integers(0, args.segments, 1000),
                                                              rng.integers(0, per, 1000))]
        absent = [f"file:nowhere/{i}.png" for i in range(1000)]
        hit = _best(lambda: db.find(stored)) / 1000
        miss = _best(lambda: db.find(absent)) / 1000
        sample = 10_000
        scan = _best(lambda: [r.get("key") for r in db.metadata(np.arange(sample))], 3) * n / sample
        queries = db.codes()[:100]
        before = _best(lambda: db.search(queries, 10)) / 100
        db.delete(rng.choice(n, 1000, replace=False))
        after = _best(lambda: db.search(queries, 10)) / 100
    print(f"{n:,} items in {args.segments} segments (built in {built:.0f} s)")
    print(f"find, stored key: {hit * 1e6:.1f} us per key; absent key: {miss * 1e6:.1f} us per key")
    print(f"one lookup by scanning the metadata instead: {scan:.2f} s ({scan / hit:,.0f}x)")
    print(f"top-10 search: {before * 1e3:.2f} ms per query; with 1,000 items deleted: {after * 1e3:.2f} ms")


if __name__ == "__main__":
    main()
