"""Rankings for evaluation: distance histograms by gallery class, and the asymmetric ranking.

- `distance_histogram`: for each query, how many gallery codes of each class lie at each
  Hamming distance (Q, K + 1, C). Order-free figures (precision within a radius, PR curves, the
  expected values over random orders of tied items) come from it.
- `asymmetric_rank`: the gallery ranked by Hamming distance and, inside a tie, by the asymmetric
  distance of the query's continuous code h to the gallery bits b (||h - b||^2, i.e. the sum of
  |h_i| over the bits where they disagree); remaining ties (identical keys, e.g. identical
  gallery codes) by gallery order. No storage beyond the packed gallery codes.
"""

from __future__ import annotations

import numpy as np

from dnhcli.errors import InputError
from dnhcli.index import ranking_kernels as kernels
from dnhcli.index.search import _query_words, _threads, _validate

_TASKS_PER_THREAD = 4


def distance_histogram(queries: np.ndarray, gallery: np.ndarray, gallery_class: np.ndarray,
                       classes: int, threads: int | None = None) -> np.ndarray:
    """(Q, K + 1, classes) int32: gallery codes of each class at each distance from each query."""
    queries, flat, bits = _validate(queries, gallery)
    gclass = _classes(gallery_class, len(gallery), classes)
    nq, width = len(queries), gallery.shape[1]
    if nq == 0 or len(gallery) == 0:
        return np.zeros((nq, bits + 1, classes), np.int32)
    qwords = _query_words(queries, width)
    out = np.zeros((nq, bits + 1, classes), np.int32)
    with _threads(threads) as nthreads:
        kernels.histogram_kernel(qwords, flat, width, len(gallery), gclass, _blocks(nq, nthreads), out)
    return out


def asymmetric_luts(h: np.ndarray) -> np.ndarray:
    """(Q, K/8, 256) float64: for byte p and a byte value v of (query bits XOR gallery bits), the
    sum of |h| over the bits set in v (bit order as in `codes.pack_codes`, big-endian)."""
    h = np.abs(np.asarray(h, np.float64))
    nq, bits = h.shape
    table = np.unpackbits(np.arange(256, dtype=np.uint8)[:, None], axis=1).astype(np.float64)  # (256, 8)
    return np.einsum("vb,qpb->qpv", table, h.reshape(nq, bits // 8, 8))


def asymmetric_rank(queries: np.ndarray, query_h: np.ndarray, gallery: np.ndarray, k: int,
                    gallery_class: np.ndarray, classes: int, threads: int | None = None
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Top-k ids (Q, min(k, N)) by (Hamming distance, asymmetric distance, id), and the class
    counts (Q, min(k, N), classes) of the tie groups in rank order that reach into the top k
    (each counted in full, also beyond rank k; unused rows are zero)."""
    queries, flat, bits = _validate(queries, gallery)
    query_h = np.asarray(query_h)
    if query_h.shape != (len(queries), bits):
        raise InputError(f"continuous query codes must have shape {(len(queries), bits)}, "
                         f"got {query_h.shape}")
    gclass = _classes(gallery_class, len(gallery), classes)
    nq, n, width = len(queries), len(gallery), gallery.shape[1]
    kk = min(int(k), n)
    if nq == 0 or n == 0:
        return np.empty((nq, kk), np.int64), np.zeros((nq, kk, classes), np.int32)
    gwords = np.zeros((-(-width // 8), n), np.uint64)
    kernels._load_words(flat, width, 0, n, gwords)
    qwords = _query_words(queries, width)
    ids, groups = np.empty((nq, kk), np.int64), np.zeros((nq, kk, classes), np.int32)
    with _threads(threads) as nthreads:
        kernels.asymmetric_kernel(qwords, asymmetric_luts(query_h), gwords, width, bits, gclass,
                                  _blocks(nq, nthreads), ids, groups)
    return ids, groups


def _blocks(nq: int, threads: int) -> np.ndarray:
    """Bounds of query blocks: a few coarse tasks per thread (dynamically scheduled)."""
    return np.linspace(0, nq, max(1, min(nq, threads * _TASKS_PER_THREAD)) + 1).astype(np.int64)


def _classes(gallery_class: np.ndarray, n: int, classes: int) -> np.ndarray:
    gclass = np.ascontiguousarray(gallery_class, dtype=np.int64)
    if gclass.shape != (n,):
        raise InputError(f"gallery classes must have shape ({n},), got {gclass.shape}")
    if n and (gclass.min() < 0 or gclass.max() >= classes):
        raise InputError(f"gallery classes must lie in 0..{classes - 1}")
    return gclass


def warm_up() -> None:
    """Compile the evaluation kernels into numba's cache (`make setup` calls this)."""
    codes = np.zeros((4, 1), np.uint8)
    classes = np.zeros(4, np.int64)
    distance_histogram(codes[:1], codes, classes, 1)
    asymmetric_rank(codes[:1], np.zeros((1, 8), np.float32), codes, 2, classes, 1)
