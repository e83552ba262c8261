"""Where the codes live and how they are searched (issue 16): top 10 and radius 0/1/2/4, side by
side in one run, for the local store (flat scan by the numba kernels, multi-index hashing) and
PostgreSQL (scan and multi-index hashing; one server, and three shards through postgres_fdw).

    python bench/store_speed.py [--items 1000000,10000000] [--pg-items 1000000] [--queries 100]

Random 48-bit codes; the queries are stored codes with 0-2 bits flipped (near-duplicate
lookups) and random codes, half each. PostgreSQL servers are started for the run on free
loopback ports from the installed binaries (as the tests do), filled by COPY (`--pg-items`
codes: loading 10M rows takes minutes and a few GB), and stopped at the end. Each figure is
the median per query over the queries, after one warm-up pass; threads: 1 for the local
kernels (`--threads`). Results are checked against the flat scan.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from pathlib import Path

import numpy as np

from dnhcli.bench.report import cpu_name
from dnhcli.index import search
from dnhcli.index.chunks import ChunkIndex
from dnhcli.stores.locate import split_url

RADII = (0, 1, 2, 4)


def queries_for(codes: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    near = codes[rng.integers(0, len(codes), count // 2)].copy()
    for row in near:
        for bit in rng.choice(48, rng.integers(0, 3), replace=False):
            row[bit // 8] ^= 1 << (7 - bit % 8)
    return np.concatenate([near, rng.integers(0, 256, (count - len(near), 6), dtype=np.uint8)])


def per_query(work, queries: np.ndarray) -> float:
    """Median milliseconds of `work(one query)` over the queries, after a warm-up pass."""
    for q in range(min(5, len(queries))):
        work(queries[q : q + 1])
    times = []
    for q in range(len(queries)):
        began = time.perf_counter()
        work(queries[q : q + 1])
        times.append(time.perf_counter() - began)
    return float(np.median(times) * 1000)


def local_rows(codes: np.ndarray, queries: np.ndarray) -> dict[str, float]:
    row: dict[str, float] = {}
    row["flat top10"] = per_query(lambda q: search.topk(q, codes, 10), queries)
    began = time.perf_counter()
    index = ChunkIndex(codes, 48)
    row["mih build s"] = time.perf_counter() - began
    for r in RADII:
        expected = search.range_search(queries, codes, r)
        found = index.range(queries, r)
        assert found is not None and all(np.array_equal(a, b) for a, b in zip(found, expected)), r
        row[f"flat r{r}"] = per_query(lambda q, r=r: search.range_search(q, codes, r), queries)
        row[f"mih r{r}"] = per_query(lambda q, r=r: index.range(q, r), queries)
    return row


def pg_rows(url: str, codes: np.ndarray, queries: np.ndarray) -> dict[str, float]:
    from dnhcli.stores import pg_sql
    from dnhcli.stores.postgres import PostgresStore

    began = time.perf_counter()
    store = PostgresStore.create(url, 48, "bench")
    for start in range(0, len(codes), 250_000):
        store.add(codes[start : start + 250_000])
    import psycopg

    for n, where in enumerate(store.shards or [url]):  # fresh statistics for the planners
        with psycopg.connect(split_url(where)[0], autocommit=True) as conn:
            conn.execute(f"ANALYZE {store.parts[n]}")
    row: dict[str, float] = {"load s": time.perf_counter() - began}
    conn, bits = store._conn, 48
    row["scan top10"] = per_query(lambda q: pg_sql.scan(conn, store.parts, bits, q, 10), queries)
    row["top10"] = per_query(lambda q: store.search(q, 10), queries)
    for r in RADII:
        expected = search.range_search(queries[:10], codes, r)
        found = store.range_search(queries[:10], r)
        assert all(np.array_equal(a, b) for a, b in zip(found, expected)), r
        row[f"scan r{r}"] = per_query(lambda q, r=r: pg_sql.within(conn, store.table, bits, q, r, True),
                                      queries[:20])
        row[f"mih r{r}"] = per_query(lambda q, r=r: pg_sql.within(conn, store.table, bits, q, r), queries)
    store.close()
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", default="1000000,10000000")
    parser.add_argument("--pg-items", default="1000000",
                        help="sizes also loaded into PostgreSQL ('' for none)")
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # so that the servers are stopped
    search.set_threads(args.threads)
    search.warm_up()
    rng = np.random.default_rng(0)
    report: dict = {"cpu": cpu_name(), "cores": os.cpu_count(), "threads": args.threads, "runs": []}
    print(f"{report['cpu']}, {report['cores']} cores, {args.threads} kernel thread(s)")
    pg_sizes = {int(n) for n in args.pg_items.split(",") if n}
    servers = []
    try:
        for n in [int(n) for n in args.items.split(",")]:
            codes = rng.integers(0, 256, (n, 6), dtype=np.uint8)
            queries = queries_for(codes, args.queries, rng)
            entry = {"items": n, "local": local_rows(codes, queries)}
            print(json.dumps(entry))
            if n in pg_sizes:
                from dnhcli.bench.pg_servers import PostgresServer

                if not servers:
                    servers = [PostgresServer() for _ in range(4)]
                entry["postgresql"] = pg_rows(servers[0].database(), codes, queries)
                print(json.dumps({"items": n, "postgresql": entry["postgresql"]}))
                from dnhcli.stores.shards import add_shard

                coordinator = servers[0].database()
                for server in servers[1:]:
                    add_shard(coordinator, server.database())
                entry["postgresql 3 shards"] = pg_rows(coordinator, codes, queries)
                print(json.dumps({"items": n, "postgresql 3 shards": entry["postgresql 3 shards"]}))
            report["runs"].append(entry)
    finally:
        for server in servers:
            server.stop()
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
