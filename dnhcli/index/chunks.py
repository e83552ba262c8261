"""Multi-index hashing (Norouzi, Punjani and Fleet): exact radius search without a scan.

A code is cut into m = ceil(bits/16) chunks of 16 bits. A stored code within Hamming distance r
of the query is within floor(r/m) bits of it on at least one chunk (pigeonhole), so every
answer is among the codes whose chunk i is one of the values within floor(r/m) bits of the
query's chunk i. `ChunkIndex` keeps, per chunk, the ids sorted by chunk value, so those
candidates are a few binary searches away; each is then checked exactly. It pays while the
candidates are few: for random 48-bit codes and r <= 2, about 3N/65536 of them (46 in 1M);
codes crowded on a few values (a trained model's classes) give many, and the caller scans
instead (`ChunkIndex.range` returns None).
"""

from __future__ import annotations

from itertools import combinations

import numpy as np

CHUNK_BITS = 16
MAX_SHARE = 1  # chunk values within this many bits (17 of 16 bits per chunk); beyond, a scan
MAX_CANDIDATES = 1 / 16  # of the codes: more candidates than this, and a scan is cheaper


def chunk_count(bits: int) -> int:
    return -(-bits // CHUNK_BITS)


def chunks_of(codes: np.ndarray, bits: int) -> np.ndarray:
    """Packed codes (N, bits/8) -> (N, ceil(bits/16)) 16-bit chunk values (int32)."""
    width = chunk_count(bits) * 2
    padded = np.zeros((len(codes), width), np.uint8)
    padded[:, : codes.shape[1]] = codes
    return padded.view(">u2").astype(np.int32).reshape(len(codes), -1)


def ball(value: int, radius: int, width: int = CHUNK_BITS) -> list[int]:
    """Every `width`-bit value within Hamming distance `radius` of `value`."""
    out = [value]
    for r in range(1, radius + 1):
        for flips in combinations(range(width), r):
            flipped = value
            for bit in flips:
                flipped ^= 1 << bit
            out.append(flipped)
    return out


class ChunkIndex:
    """Per 16-bit chunk, the ids of `codes` sorted by chunk value (built in memory: 6 bytes per
    code and chunk, about 1 s per 10M codes and chunk)."""

    def __init__(self, codes: np.ndarray, bits: int) -> None:
        self.codes, self.bits = codes, bits
        chunks = chunks_of(codes, bits)
        kind = np.int32 if len(codes) < 2**31 else np.int64
        self.order = np.stack([np.argsort(chunks[:, i], kind="stable").astype(kind)
                               for i in range(chunks.shape[1])])
        self.sorted = np.stack([chunks[order, i].astype(np.uint16) for i, order in enumerate(self.order)])

    def range(self, queries: np.ndarray, radius: int) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """FAISS-style (lims, distances int32, ids int64) of every code within `radius` of each
        query, sorted by (distance, id); None where a scan is cheaper (a large radius, or too
        many candidates for some query)."""
        from dnhcli.index.chunks_kernels import query_kernel

        share = radius // chunk_count(self.bits)
        if share > MAX_SHARE:
            return None
        most = int(MAX_CANDIDATES * len(self.codes))
        out_d, out_i = np.empty(most + 1, np.int32), np.empty(most + 1, np.int64)
        dists, ids = [], []
        for q, chunks in enumerate(chunks_of(queries, self.bits)):
            values = np.array([ball(int(c), share) for c in chunks], np.uint16)
            n = query_kernel(self.sorted, self.order, self.codes, chunks, queries[q], values, share, radius,
                             most, out_d, out_i)
            if n < 0:
                return None
            order = np.lexsort((out_i[:n], out_d[:n]))
            dists.append(out_d[:n][order])
            ids.append(out_i[:n][order])
        lims = np.zeros(len(queries) + 1, np.int64)
        np.cumsum([len(d) for d in dists], out=lims[1:])
        dist = np.concatenate([np.zeros(0, np.int32), *dists])
        return lims, dist, np.concatenate([np.zeros(0, np.int64), *ids])


def warm_up() -> None:
    """Compile the kernel into numba's cache (or load it from it); `make setup` calls this."""
    codes = np.zeros((4, 6), np.uint8)
    ChunkIndex(codes, 48).range(codes[:1], 0)
