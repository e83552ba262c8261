"""Stage 2 of a search: re-scoring Hamming candidates with a compact vector stored beside each
code (numpy in, numpy out).

The re-rank vector of an item is its continuous code h (the encoder's output, in (-1, 1)^K)
quantised to int8: `round(clip(h, -1, 1) * 127)`, K bytes per item (48 at 48 bits). The score of
a stored item for a query is the cosine of the query's float h and the item's int8 vector (the
scale 1/127 cancels), in [-1, 1], higher is nearer. A two-stage ranking orders the candidates by
(score descending, Hamming distance ascending, id ascending), so it is deterministic.

Stage 1 (which items are candidates) is the store's: every item at a Hamming distance no larger
than that of the `k x oversample`-th nearest one (the whole tie at the cut), see
`dnhcli.index.search.topk_ties`.
"""

from __future__ import annotations

import numpy as np

from dnhcli.errors import InputError

VECTOR_KIND = "h-int8"  # the kind of re-rank vector written by this version
VECTOR_SCALE = 127.0
DEFAULT_OVERSAMPLE = 10  # candidates = k x oversample (and the whole tie at the cut)
MAX_OVERSAMPLE = 1000


def rerank_spec(bits: int) -> dict[str, object]:
    """The manifest entry that says a database stores re-rank vectors, and which."""
    return {"kind": VECTOR_KIND, "dim": int(bits), "dtype": "int8", "scale": VECTOR_SCALE}


def check_oversample(oversample: int) -> int:
    integer = isinstance(oversample, (int, np.integer)) and not isinstance(oversample, bool)
    if not integer or not 1 <= oversample <= MAX_OVERSAMPLE:
        raise InputError(f"--oversample must be an integer from 1 to {MAX_OVERSAMPLE}, "
                         f"got {oversample!r}")
    return int(oversample)


def quantize_vectors(h: np.ndarray) -> np.ndarray:
    """Continuous codes (N, K) float -> re-rank vectors (N, K) int8."""
    h = np.asarray(h, np.float32)
    if h.ndim != 2:
        raise InputError(f"continuous codes must be a 2-D array (N, K), got shape {h.shape}")
    if not np.all(np.isfinite(h)):
        raise InputError("continuous codes contain NaN or infinite values",
                         hint="the model produced invalid outputs; check the checkpoint and input scaling")
    return np.rint(np.clip(h, -1.0, 1.0) * VECTOR_SCALE).astype(np.int8)


def check_vectors(vectors: object, count: int, dim: int, what: str = "re-rank vectors") -> np.ndarray:
    """`vectors` as a C-contiguous (count, dim) int8 array, or an InputError saying why not."""
    array = np.asarray(vectors)
    if array.dtype != np.int8:
        raise InputError(f"{what} must be int8, got dtype {array.dtype}",
                         hint="quantise continuous codes with dnhcli.index.rerank.quantize_vectors")
    if array.shape != (count, dim):
        raise InputError(f"{what} must have shape ({count}, {dim}), got {array.shape}")
    return np.ascontiguousarray(array)


def candidate_scores(query_h: np.ndarray, lims: np.ndarray, vectors: np.ndarray) -> np.ndarray:
    """Cosine of each query's continuous code (Q, K) with its candidates' stored int8 vectors
    (M, K), FAISS-style: query q's candidates are rows lims[q]:lims[q+1]. (M,) float32; a zero
    vector (a purged item) scores 0. One computation for every query, whatever Q."""
    q = np.atleast_2d(np.asarray(query_h, np.float32))
    v = np.asarray(vectors, np.float32)
    row = np.repeat(np.arange(len(q)), np.diff(lims))
    qn = np.maximum(np.sqrt(np.einsum("ij,ij->i", q, q)), np.float32(1e-12))
    scale = np.sqrt(np.einsum("ij,ij->i", v, v)) * qn[row]
    out = np.zeros(len(v), np.float32)
    np.divide(np.einsum("ij,ij->i", v, q[row]), scale, out=out, where=scale > 0)
    return out


def scores(query_h: np.ndarray, vectors: np.ndarray) -> np.ndarray:
    """Cosine of one query's continuous code (K,) with stored int8 vectors (M, K): (M,) float32."""
    return candidate_scores(np.asarray(query_h).reshape(1, -1), np.array([0, len(vectors)]), vectors)


def order(score: np.ndarray, hamming: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Indices that sort candidates by (score descending, Hamming ascending, id ascending)."""
    return np.lexsort((np.asarray(ids), np.asarray(hamming), -np.asarray(score, np.float64)))


def rerank_candidates(query_h: np.ndarray, lims: np.ndarray, hamming: np.ndarray, ids: np.ndarray,
                      vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Re-score FAISS-style candidates (lims (Q+1,), hamming, ids, and each candidate's stored
    vector) and keep each query's best k: (hamming int32, score float32, ids int64), each
    (Q, min(k, fewest candidates of any query)) when every query has at least k candidates;
    otherwise rows are padded with id -1, distance -1 and score NaN."""
    lims = np.asarray(lims, np.int64)
    nq, counts = len(lims) - 1, np.diff(lims)
    width = int(min(k, counts.max(initial=0)))
    out_d = np.full((nq, width), -1, np.int32)
    out_s = np.full((nq, width), np.nan, np.float32)
    out_i = np.full((nq, width), -1, np.int64)
    if width == 0:
        return out_d, out_s, out_i
    score = candidate_scores(query_h, lims, vectors)
    row = np.repeat(np.arange(nq), counts)
    ranked = np.lexsort((np.asarray(ids), np.asarray(hamming), -score.astype(np.float64), row))
    place = np.arange(len(ranked)) - lims[row[ranked]]  # rank inside its query (rows come in order)
    keep = ranked[place < width]
    at = (row[keep], place[place < width])
    out_d[at], out_s[at], out_i[at] = np.asarray(hamming)[keep], score[keep], np.asarray(ids)[keep]
    return out_d, out_s, out_i


def two_stage_arrays(query_codes: np.ndarray, query_h: np.ndarray, codes: np.ndarray,
                     vectors: np.ndarray, k: int, oversample: int = DEFAULT_OVERSAMPLE
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Two-stage search over in-memory arrays (packed codes (N, K/8) and int8 vectors (N, K)):
    (hamming int32, score float32, ids int64), each (Q, min(k, N)); the same answer a store gives."""
    from dnhcli.index.search import topk_ties

    oversample = check_oversample(oversample)
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise InputError(f"k must be a positive integer, got {k!r}")
    lims, hamming, ids = topk_ties(query_codes, codes, int(k) * oversample)
    return rerank_candidates(query_h, lims, hamming, ids, np.asarray(vectors)[ids], int(k))
