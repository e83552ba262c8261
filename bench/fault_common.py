"""What every fault-injection trial shares: deterministic batches of codes and metadata, a
light writer process, the brute-force reference, and the check that a database holds exactly
what it should and answers like brute force over it.

A trial's outcome is one of:
- consistent: the database opens and holds exactly the expected items, and search,
  range search and metadata equal brute force over them;
- detected: dnh refused with a clear DnhError (on open or on read);
- harmless: the fault changed nothing dnh reads, and every answer equals the pristine one;
- lost: items whose append was acknowledged are missing;
- wrong: an answer differs from the truth without an error (or an unclear exception).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dnhcli.errors import DnhError
from dnhcli.stores.hashdb import HashDB

BITS = 48
HERE = Path(__file__).resolve().parent
OUTCOMES = ("consistent", "detected", "harmless", "lost", "wrong")


def batch(b: int, bits: int = BITS) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """Batch b: 1-600 codes (from a small pool, so there are many exact ties) and metadata."""
    rng = np.random.default_rng(1000 + b)
    pool = np.random.default_rng(7).integers(0, 256, (64, bits // 8), dtype=np.uint8)
    n = int(rng.integers(1, 601))
    codes = pool[rng.integers(0, len(pool), n)]
    codes[rng.random(n) < 0.3, 0] ^= np.uint8(1)
    meta = [{"source": f"batch{b}/{i}", "organ": int(rng.integers(0, 3)), "note": "ü€ \"x\""}
            for i in range(n)]
    return codes, meta


def expected(batches: int | list[int]) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """The codes and metadata of batches 0..batches-1 (or of the listed batches), in order."""
    parts = [batch(b) for b in (range(batches) if isinstance(batches, int) else batches)]
    codes = np.concatenate([p[0] for p in parts]) if parts else np.zeros((0, BITS // 8), np.uint8)
    return codes, [m for p in parts for m in p[1]]


def sizes(batches: int) -> np.ndarray:
    """Item counts after 0..batches whole batches."""
    return np.cumsum([0] + [len(batch(b)[0]) for b in range(batches)])


def writer(path: str, first: int, last: int, max_segments: int) -> None:
    """The light writer (run as `python bench/faults.py writer ...`): append batches
    first..last-1, printing each number once its append returned (the acknowledgement)."""
    db = HashDB.open(path, verify=False)
    db.max_segments = max_segments
    print("ready", flush=True)
    try:
        for b in range(first, last):
            db.add(*batch(b))
            print(b, flush=True)
    except DnhError as exc:  # e.g. another writer holds the lock: refused, nothing written
        print(f"refused: {exc}", file=sys.stderr, flush=True)
        sys.exit(3)
    db.close()


def start_writer(path: Path, first: int, last: int, max_segments: int = 4,
                 env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, str(HERE / "faults.py"), "writer", str(path), str(first),
                             str(last), str(max_segments)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, **(env or {})})


def brute_topk(queries: np.ndarray, codes: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top k by (distance, id) with plain numpy: the truth a search must equal."""
    xor = np.bitwise_xor(queries[:, None, :], codes[None, :, :])
    dist = np.unpackbits(xor, axis=2).sum(axis=2).astype(np.int32)
    order = np.argsort(dist, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(dist, order, 1), order.astype(np.int64)


def queries_for(codes: np.ndarray, seed: int, width: int = BITS // 8) -> np.ndarray:
    """Random codes plus stored codes with one bit flipped (so that ties and near hits occur)."""
    rng = np.random.default_rng(seed)
    random = rng.integers(0, 256, (3, codes.shape[1] if len(codes) else width), dtype=np.uint8)
    if not len(codes):
        return random
    near = codes[rng.integers(0, len(codes), 3)].copy()
    near[:, 1] ^= np.uint8(4)
    return np.concatenate([random, near])


def answers(db: HashDB, queries: np.ndarray) -> dict[str, Any]:
    """Everything a reader gets from a database: codes, metadata, key lookups, deleted ids,
    top-k and range results."""
    metadata = db.metadata(db.live_ids())
    out: dict[str, Any] = {"count": len(db), "codes": db.codes().tobytes(), "metadata": metadata,
                           "deleted": db.deleted_ids().tolist(),
                           "find": db.find([m["key"] for m in metadata if "key" in m]).tolist()}
    for k in (1, 10, 100):
        dist, ids = db.search(queries, k)
        out[f"top{k}"] = (dist.tolist(), ids.tolist())
    lims, dist, ids = db.range_search(queries, 3)
    out["range3"] = (lims.tolist(), dist.tolist(), ids.tolist())
    return out


def truth(codes: np.ndarray, meta: list[dict[str, Any]], queries: np.ndarray) -> dict[str, Any]:
    """What `answers` must return for a database holding exactly `codes` and `meta`."""
    out: dict[str, Any] = {"count": len(codes), "codes": codes.tobytes(),
                           "metadata": [{"id": i, **m} for i, m in enumerate(meta)], "deleted": [],
                           "find": [i for i, m in enumerate(meta) if "key" in m]}
    for k in (1, 10, 100):
        dist, ids = brute_topk(queries, codes, k) if len(codes) else (
            np.zeros((len(queries), 0), np.int32), np.zeros((len(queries), 0), np.int64))
        out[f"top{k}"] = (dist.tolist(), ids.tolist())
    if len(codes):
        full = np.unpackbits(np.bitwise_xor(queries[:, None, :], codes[None, :, :]), axis=2).sum(axis=2)
    else:
        full = np.zeros((len(queries), 0), np.int64)
    lims, dists, ids = [0], [], []
    for row in full:
        hits = np.flatnonzero(row <= 3)
        hits = hits[np.lexsort((hits, row[hits]))]
        lims.append(lims[-1] + len(hits))
        dists += row[hits].tolist()
        ids += hits.tolist()
    out["range3"] = (lims, dists, ids)
    return out


def check_holds(path: Path, codes: np.ndarray, meta: list[dict[str, Any]], seed: int) -> str:
    """'consistent' if the database at `path` holds exactly these items and answers like brute
    force; 'wrong' otherwise (a refusal to open counts as wrong: the data should be there)."""
    try:
        with HashDB.open(path) as db:
            queries = queries_for(codes, seed, db.bits // 8)
            return "consistent" if answers(db, queries) == truth(codes, meta, queries) else "wrong"
    except DnhError:
        return "wrong"


@dataclass
class Tally:
    """Outcome counts per kind of fault, and a few examples of anything not clean."""

    counts: dict[str, Counter[str]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def add(self, kind: str, outcome: str, detail: str = "") -> None:
        self.counts.setdefault(kind, Counter())[outcome] += 1
        if outcome in ("lost", "wrong") and len(self.problems) < 50:
            self.problems.append(f"{kind}: {outcome}: {detail}")

    def rows(self) -> list[dict[str, Any]]:
        return [{"fault": kind, "trials": sum(c.values()), **{o: c.get(o, 0) for o in OUTCOMES}}
                for kind, c in self.counts.items()]

    def bad(self) -> int:
        return sum(c.get("lost", 0) + c.get("wrong", 0) for c in self.counts.values())
