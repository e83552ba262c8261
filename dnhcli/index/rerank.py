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


def scores(query_h: np.ndarray, vectors: np.ndarray) -> np.ndarray:
    """Cosine of one query's continuous code (K,) with stored int8 vectors (M, K): (M,) float32.
    A zero vector (a purged item) scores 0."""
    q = np.asarray(query_h, np.float32).reshape(-1)
    v = np.asarray(vectors, np.float32)
    qn = float(np.linalg.norm(q))
    vn = np.linalg.norm(v, axis=1)
    dots = v @ q
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(vn > 0, dots / (vn * max(qn, 1e-12)), 0.0)
    return out.astype(np.float32)


def order(score: np.ndarray, hamming: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Indices that sort candidates by (score descending, Hamming ascending, id ascending)."""
    return np.lexsort((np.asarray(ids), np.asarray(hamming), -np.asarray(score, np.float64)))


def rerank_candidates(query_h: np.ndarray, lims: np.ndarray, hamming: np.ndarray, ids: np.ndarray,
                      vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Re-score FAISS-style candidates (lims (Q+1,), hamming, ids, and each candidate's stored
    vector) and keep each query's best k: (hamming int32, score float32, ids int64), each
    (Q, min(k, fewest candidates of any query)) when every query has at least k candidates;
    otherwise rows are padded with id -1, distance -1 and score NaN."""
    nq = len(lims) - 1
    width = int(min(k, max((int(lims[q + 1] - lims[q]) for q in range(nq)), default=0)))
    out_d = np.full((nq, width), -1, np.int32)
    out_s = np.full((nq, width), np.nan, np.float32)
    out_i = np.full((nq, width), -1, np.int64)
    for q in range(nq):
        a, b = int(lims[q]), int(lims[q + 1])
        s = scores(query_h[q], vectors[a:b])
        best = order(s, hamming[a:b], ids[a:b])[:width]
        out_d[q, :len(best)] = hamming[a:b][best]
        out_s[q, :len(best)] = s[best]
        out_i[q, :len(best)] = ids[a:b][best]
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
