"""Two-stage search, the same for every store: Hamming candidates (the k x oversample nearest
live items and the whole tie at the cut), then each re-scored with its stored re-rank vector
(`dnhcli.index.rerank`). A store provides `search`, `range_search`, `vectors` and `has_vectors`;
it may replace `candidates` with a faster one that gives the same items."""

from __future__ import annotations

from typing import Any

import numpy as np

from dnhcli.errors import InputError
from dnhcli.index.rerank import DEFAULT_OVERSAMPLE, check_oversample, rerank_candidates
from dnhcli.index.search import within_cut

NO_VECTORS_HINT = "upgrade it with `dnh db upgrade DB --out NEW SOURCES...`, or search with --no-rerank"


def no_vectors_notice(where: object) -> str:
    """The one line said when a database written before re-rank vectors is searched."""
    return (f"notice: the hash database {where} stores no re-rank vectors (an older database): "
            "searching by Hamming distance alone; `dnh db upgrade` adds them")


class TwoStageSearch:
    """`search_two_stage` over a store's `candidates` and `vectors`."""

    search: Any
    range_search: Any
    vectors: Any

    @property
    def bits(self) -> int:
        raise NotImplementedError

    @property
    def has_vectors(self) -> bool:
        raise NotImplementedError

    def candidates(self, packed_queries: np.ndarray, m: int
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every live item at a Hamming distance no larger than that of each query's m-th nearest
        live item, FAISS-style (lims int64 (Q+1,), distances int32, ids int64), sorted by (d, id)."""
        dist, _ = self.search(packed_queries, m)
        if dist.shape[1] == 0:
            nq = len(dist)
            return np.zeros(nq + 1, np.int64), np.zeros(0, np.int32), np.zeros(0, np.int64)
        cut = dist[:, -1].astype(np.int64)
        return within_cut(cut, *self.range_search(packed_queries, int(cut.max())))

    def search_two_stage(self, packed_queries: np.ndarray, query_h: np.ndarray, k: int,
                         oversample: int = DEFAULT_OVERSAMPLE
                         ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The k best items by the two-stage rule: (hamming int32, score float32, ids int64), each
        (Q, min(k, live)), by score descending, then Hamming distance, then id."""
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise InputError(f"k must be a positive integer, got {k!r}")
        oversample = check_oversample(oversample)
        if not self.has_vectors:
            raise InputError(f"the hash database {getattr(self, 'path', '')} stores no re-rank vectors",
                             hint=NO_VECTORS_HINT)
        query_h = np.asarray(query_h, np.float32)
        if query_h.ndim != 2 or query_h.shape[1] != self.bits or len(query_h) != len(packed_queries):
            raise InputError(f"continuous query codes must have shape ({len(packed_queries)}, {self.bits}), "
                             f"got {query_h.shape}")
        lims, hamming, ids = self.candidates(packed_queries, int(k) * oversample)
        vectors = self.vectors(ids) if len(ids) else np.zeros((0, self.bits), np.int8)
        return rerank_candidates(query_h, lims, hamming, ids, vectors, int(k))
