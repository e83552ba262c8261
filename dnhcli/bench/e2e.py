"""End-to-end query latency: with the model and the database loaded once, hash one image and
search the database, one query at a time, as a retrieval service would.

The database is a real on-disk `HashDB`: the user's (`--db`), or one made in a scratch folder
from seeded random codes (1M by default) stamped with the model's fingerprint.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dnhcli.deploy.backends import Backend
from dnhcli.index.codes import pack_codes, sign_bits
from dnhcli.index.search import set_threads, warm_up
from dnhcli.stores.hashdb import HashDB

WARM_UP = 20  # queries before timing (first-call costs of the request and the kernels)


@dataclass(frozen=True)
class EndToEnd:
    """Latency figures (ms) of hash + search for single queries."""

    backend: str
    threads: int
    db_codes: int
    k: int
    queries: int
    total_ms: np.ndarray
    hash_ms: np.ndarray
    search_ms: np.ndarray

    def to_json(self) -> dict[str, Any]:
        def figures(ms: np.ndarray) -> dict[str, float]:
            return {"median": round(float(np.median(ms)), 4),
                    "p99": round(float(np.percentile(ms, 99)), 4),
                    "average": round(float(ms.mean()), 4)}

        return {"backend": self.backend, "threads": self.threads, "db_codes": self.db_codes,
                "k": self.k, "queries": self.queries, "latency_ms": figures(self.total_ms),
                "hash_ms": figures(self.hash_ms), "search_ms": figures(self.search_ms)}


def random_database(path: Path, backend: Backend, count: int, seed: int = 0) -> Path:
    """A HashDB at `path` with `count` seeded random codes, accepted by `backend`'s model."""
    from dnhcli.bench.search_speed import random_codes

    with HashDB.create(path, backend.bits, backend.fingerprint, {"source": "dnh benchmark"}) as db:
        db.add(random_codes(count, backend.bits, seed))  # one segment (6 MB per 1M 48-bit codes)
    return path


def end_to_end(backend: Backend, db_path: Path, images: np.ndarray, threads: int,
               queries: int = 1000, k: int = 10) -> EndToEnd:
    """Time `queries` single-image queries (hash, then top-k search) against the database,
    after a warm-up; images are taken in turn from `images` (uint8, N x 28 x 28). The search
    kernels are loaded first: this is the steady state of a long-running process."""
    import torch

    torch.set_num_threads(threads)
    warm_up()
    set_threads(threads)
    clock = time.perf_counter
    with HashDB.open(db_path) as db:  # checked once, outside the timing
        db.check_model(backend.bits, backend.fingerprint)
        total, hashing, searching = (np.zeros(queries) for _ in range(3))
        for i in range(-WARM_UP, queries):
            image = images[i % len(images)][None]
            t0 = clock()
            packed = pack_codes(sign_bits(backend.encode(image)))
            t1 = clock()
            db.search(packed, k)
            t2 = clock()
            if i >= 0:
                total[i], hashing[i], searching[i] = (t2 - t0) * 1e3, (t1 - t0) * 1e3, (t2 - t1) * 1e3
        size = len(db)
    set_threads(None)
    return EndToEnd(backend=backend.name, threads=threads, db_codes=size, k=k, queries=queries,
                    total_ms=total, hash_ms=hashing, search_ms=searching)
