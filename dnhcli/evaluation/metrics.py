"""Retrieval figures per query, from ranked lists and distance histograms (numpy, vectorised).

Definitions, tie rules and empty-query rules are written out in docs/EVALUATION.md. In short,
for a query and a ranked list of L = min(k, N) gallery items:

- AP@k = sum_{m<=L} P(m) rel(m) / (relevant items in the top L); 0 when there are none.
- DCG@k = sum_{m<=L} (2^grade(m) - 1) / log2(m + 1) with grades 2 (same organ and disease),
  1 (same organ), 0; nDCG "reference" divides by the DCG of the top L re-sorted (queries whose
  top L holds no relevant item are left out: NaN here), nDCG "standard" by the DCG of the best
  L items of the whole gallery (0 when the gallery holds none).
- P@k = relevant items in the top L / L.
- Within Hamming radius r: precision = relevant / retrieved (0 when nothing is retrieved),
  recall = relevant / relevant in the gallery (0 when there are none).
"""

from __future__ import annotations

import numpy as np


def average_precision_at_k(relevant: np.ndarray) -> np.ndarray:
    """AP@k per query from a (Q, k) relevance matrix of the ranked list:
    sum over ranks m of P(m) * rel(m), divided by the relevant items in the top k (0 if none)."""
    k = np.shape(relevant)[1]
    return average_precision_at_ks(relevant, (k,))[k]


def average_precision_at_ks(relevant: np.ndarray, ks: tuple[int, ...]) -> dict[int, np.ndarray]:
    """AP@k per query for each k, from one (Q, L) relevance matrix (k > L means the whole list)."""
    rel = np.asarray(relevant, dtype=np.float64)
    hits = np.cumsum(rel, axis=1)
    summed = np.cumsum(hits / np.arange(1, rel.shape[1] + 1) * rel, axis=1)
    out = {}
    for k in ks:
        cut = min(k, rel.shape[1])
        if cut == 0:
            out[k] = np.zeros(len(rel))
            continue
        total, num = hits[:, cut - 1], summed[:, cut - 1]
        out[k] = np.divide(num, total, out=np.zeros_like(num), where=total > 0)
    return out


def relevance(ranked: np.ndarray, query_labels: np.ndarray, gallery_labels: np.ndarray) -> np.ndarray:
    """(Q, k) bool: gallery item `ranked[q, m]` has the query's label (labels (N,) or (N, L):
    every column must match)."""
    q = np.asarray(query_labels).reshape(len(ranked), -1)
    g = np.asarray(gallery_labels).reshape(len(gallery_labels), -1)
    return (g[ranked] == q[:, None, :]).all(axis=2)


def discounts(n: int) -> np.ndarray:
    """discount[m] = 1 / log2(m + 1) for ranks m = 1..n; discount[0] = 0."""
    out = np.zeros(n + 1)
    out[1:] = 1.0 / np.log2(np.arange(2, n + 2))
    return out


def ideal_dcg(top_grade: np.ndarray, any_grade: np.ndarray, cumulative: np.ndarray) -> np.ndarray:
    """DCG of a best list: `top_grade` items of gain 3 first, then items of gain 1 up to
    `any_grade` items in all (both already cut at the list length). `cumulative[n]` is the sum
    of the first n discounts."""
    return 3.0 * cumulative[top_grade] + cumulative[any_grade] - cumulative[top_grade]


def dcg_figures(grades: np.ndarray, ks: tuple[int, ...], strict_total: np.ndarray,
                organ_total: np.ndarray) -> tuple[dict[int, np.ndarray], dict[int, np.ndarray]]:
    """nDCG@k (reference, standard) per query from the (Q, L) grades of the ranked list and the
    query's relevant counts in the whole gallery (same class; same organ)."""
    grades = np.asarray(grades)
    length = grades.shape[1]
    disc = discounts(length)
    cumulative = np.cumsum(disc)
    gains = np.where(grades == 2, 3.0, np.where(grades == 1, 1.0, 0.0))
    dcg = np.cumsum(gains * disc[1:], axis=1)
    top = np.cumsum(grades == 2, axis=1)
    anyg = np.cumsum(grades >= 1, axis=1)
    reference, standard = {}, {}
    for k in ks:
        cut = min(k, length)
        if cut == 0:
            reference[k] = np.full(len(grades), np.nan)
            standard[k] = np.zeros(len(grades))
            continue
        got = dcg[:, cut - 1]
        ideal_ref = ideal_dcg(top[:, cut - 1], anyg[:, cut - 1], cumulative)
        reference[k] = np.divide(got, ideal_ref, out=np.full(len(got), np.nan), where=ideal_ref > 0)
        ideal_std = ideal_dcg(np.minimum(strict_total, cut), np.minimum(organ_total, cut), cumulative)
        standard[k] = np.divide(got, ideal_std, out=np.zeros(len(got)), where=ideal_std > 0)
    return reference, standard


def precision_at_ks(relevant: np.ndarray, ks: tuple[int, ...]) -> dict[int, np.ndarray]:
    """P@k per query: relevant items in the top min(k, L) divided by min(k, L)."""
    hits = np.cumsum(np.asarray(relevant, dtype=np.float64), axis=1)
    out = {}
    for k in ks:
        cut = min(k, hits.shape[1])
        out[k] = hits[:, cut - 1] / cut if cut else np.zeros(len(hits))
    return out


def majority_vote_at_ks(ranked_classes: np.ndarray, query_classes: np.ndarray,
                        ks: tuple[int, ...]) -> dict[int, np.ndarray]:
    """MV@k per query: 1.0 where the query's class is the most frequent class among its top
    min(k, L) results, else 0.0. A tie in the vote goes to the tied class met first in the
    ranking (the nearest item's). Classes are integer ids >= 0."""
    ranked_classes = np.asarray(ranked_classes, dtype=np.int64)
    q, length = ranked_classes.shape
    classes = int(max(ranked_classes.max(initial=-1), np.max(query_classes, initial=-1))) + 1
    cells = np.arange(q)[:, None] * classes + ranked_classes  # (query, class) cell of each item
    first = np.full(q * classes, length, np.int64)
    np.minimum.at(first, cells.reshape(-1), np.tile(np.arange(length), q))
    counts = np.zeros(q * classes, np.int64)
    out, done = {}, 0
    for k in sorted(ks):
        cut = min(k, length)
        np.add.at(counts, cells[:, done:cut].reshape(-1), 1)
        done = cut
        key = (counts * (length + 1) - first).reshape(q, classes)  # more votes, then nearer first
        winner = key.argmax(axis=1)
        out[k] = ((winner == query_classes) & (cut > 0)).astype(np.float64)
    return out


def radius_curves(relevant_by_distance: np.ndarray, retrieved_by_distance: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Precision and recall (Q, K + 1) within Hamming radius r = 0..K, from per-distance counts
    of relevant and of all gallery items."""
    rel = np.cumsum(relevant_by_distance, axis=1, dtype=np.float64)
    got = np.cumsum(retrieved_by_distance, axis=1, dtype=np.float64)
    total = rel[:, -1:] if rel.shape[1] else np.zeros((len(rel), 1))
    precision = np.divide(rel, got, out=np.zeros_like(rel), where=got > 0)
    recall = np.divide(rel, total, out=np.zeros_like(rel), where=total > 0)
    return precision, recall
