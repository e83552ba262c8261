"""Instance retrieval: find a stored image again from an altered copy; and whether the items of
a query's class that rank first look more like it than its other class-mates.

- Instance recall@k (tie-aware): a sample of gallery images is altered (`alterations`), encoded,
  and searched against the whole gallery. If the original sits in a tie group that starts after
  `ahead` items and holds `tied` items, its expected hit@k over the random orders of the tie is
  clip(k - ahead, 0, tied) / tied; recall@k is the mean over the sample. Hamming ties are equal
  distances; two-stage ties are equal (score, Hamming distance) among the candidates of a search
  for k results, and an original that is not a candidate scores 0.
- Mean tie size: the mean over gallery items of how many items share its exact code (itself
  included), i.e. sum over distinct codes of count^2, divided by N.
- Likeness ratio: over a sample of queries, the mean pixel L2 distance from the query to the
  items of its class among its top 10, divided by the mean distance to the gallery items of its
  class (all of them, or a seeded pool of LIKENESS_POOL items on a larger gallery): below 1 when
  the ranking prefers the class-mates that look like the query.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from dnhcli.errors import InputError
from dnhcli.evaluation.alterations import ALTERATION_NAMES, alter
from dnhcli.evaluation.two_stage import stage_candidates
from dnhcli.index.codes import codes_from_continuous
from dnhcli.index.ranking import distance_histogram
from dnhcli.progress import ProgressFn, no_progress

INSTANCE_KS = (1, 10)
DEFAULT_INSTANCE_SAMPLE = 200
LIKENESS_K = 10
LIKENESS_POOL = 5000


def check_sample(sample: int) -> int:
    if isinstance(sample, bool) or not isinstance(sample, (int, np.integer)) or sample < 1:
        raise InputError(f"--instance-sample must be a positive integer, got {sample!r}",
                         hint="pass --no-instance to leave instance retrieval out")
    return int(sample)


def sample_indices(n: int, sample: int, seed: int) -> np.ndarray:
    """At most `sample` of range(n), seeded, sorted (all of them when n <= sample)."""
    if n <= sample:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, sample, replace=False))


def expected_hits(ahead: np.ndarray, tied: np.ndarray, k: int) -> np.ndarray:
    """E[hit@k] of an item placed uniformly inside a tie of `tied` items after `ahead` items
    (0 where tied is 0: the item was not ranked)."""
    ahead, tied = np.asarray(ahead, np.float64), np.asarray(tied, np.float64)
    inside = np.clip(k - ahead, 0.0, tied)
    return np.divide(inside, tied, out=np.zeros_like(inside), where=tied > 0)


def hamming_hits(queries: np.ndarray, gallery: np.ndarray, originals: np.ndarray,
                 ks: tuple[int, ...] = INSTANCE_KS, threads: int | None = None) -> dict[int, np.ndarray]:
    """Expected hit@k (Q,) of gallery item originals[q] for packed query q, ranked by Hamming
    distance with ties in random order."""
    hist = distance_histogram(queries, gallery, np.zeros(len(gallery), np.int64), 1, threads)[:, :, 0]
    hist = hist.astype(np.int64)
    d = np.unpackbits(np.bitwise_xor(queries, gallery[originals]), axis=1).sum(axis=1)
    rows = np.arange(len(queries))
    ahead = (np.cumsum(hist, axis=1) - hist)[rows, d]
    return {k: expected_hits(ahead, hist[rows, d], k) for k in ks}


def two_stage_hits(queries: np.ndarray, query_h: np.ndarray, gallery: np.ndarray, vectors: np.ndarray,
                   originals: np.ndarray, ks: tuple[int, ...] = INSTANCE_KS, oversample: int = 10,
                   threads: int | None = None) -> dict[int, np.ndarray]:
    """Expected hit@k (Q,) of gallery item originals[q] in a two-stage search for k results,
    ties (equal score and Hamming distance) in random order."""
    cand = stage_candidates(queries, query_h, gallery, vectors, max(ks) * oversample, threads)
    row = np.repeat(np.arange(len(queries)), np.diff(cand.lims))
    position = np.arange(len(cand.ids))
    original = cand.ids == np.asarray(originals)[row]
    out = {}
    for k in ks:
        inside = position < cand.ends(k * oversample)[row]
        found = original & inside
        s_o = np.full(len(queries), np.nan, np.float32)
        d_o = np.full(len(queries), -1, np.int64)
        s_o[row[found]], d_o[row[found]] = cand.score[found], cand.hamming[found]
        s, d = cand.score, cand.hamming
        same = (s == s_o[row]) & inside
        ahead = np.bincount(row, weights=inside & ((s > s_o[row]) | (same & (d < d_o[row]))),
                            minlength=len(queries))
        tied = np.bincount(row, weights=same & (d == d_o[row]), minlength=len(queries))
        out[k] = expected_hits(ahead, tied, k)
    return out


def instance_recall(encode: Callable[[np.ndarray], np.ndarray], images: np.ndarray, gallery: np.ndarray,
                    vectors: np.ndarray | None, *, sample: int = DEFAULT_INSTANCE_SAMPLE, seed: int = 0,
                    oversample: int = 10, alterations: tuple[str, ...] = ALTERATION_NAMES,
                    threads: int | None = None, progress: ProgressFn = no_progress) -> dict[str, Any]:
    """Recall@1 and @10 of the original for every alteration of a seeded sample of the gallery
    `images` (uint8 (N, S, S), in the order of the packed `gallery` codes), by Hamming distance
    and (given the gallery's int8 re-rank `vectors`) by the two-stage search."""
    picked = sample_indices(len(gallery), check_sample(sample), seed)
    source = np.asarray(images[picked])
    out: dict[str, Any] = {"sample": len(picked), "gallery": len(gallery), "seed": seed,
                           "alterations": list(alterations), "hamming": {},
                           "two_stage": {} if vectors is not None else None}
    for done, name in enumerate(alterations):
        h = np.asarray(encode(alter(source, name, seed)), np.float32)
        codes = codes_from_continuous(h)
        out["hamming"][name] = _means(hamming_hits(codes, gallery, picked, INSTANCE_KS, threads))
        if vectors is not None:
            out["two_stage"][name] = _means(two_stage_hits(codes, h, gallery, vectors, picked, INSTANCE_KS,
                                                           oversample, threads))
        progress("instance", done + 1, len(alterations))
    return out


def _means(hits: dict[int, np.ndarray]) -> dict[str, float | None]:
    return {f"recall@{k}": round(float(v.mean()), 6) if len(v) else None for k, v in hits.items()}


def likeness_ratio(query_images: np.ndarray, gallery_images: np.ndarray, query_class: np.ndarray,
                   gallery_class: np.ndarray, ranked: np.ndarray, seed: int = 0) -> dict[str, Any]:
    """Mean L2 pixel distance from each query to the items of its class among `ranked` (Q, k
    gallery indices), over the mean distance to the gallery items of its class; queries with no
    class-mate in their list are left out ("queries" counts those kept)."""
    q = np.asarray(query_images).reshape(len(query_images), -1).astype(np.float64)
    n = len(gallery_images)
    pool = sample_indices(n, LIKENESS_POOL, seed)
    g = np.asarray(gallery_images[pool]).reshape(len(pool), -1).astype(np.float64)
    top = np.asarray(gallery_images[np.asarray(ranked).reshape(-1)]).reshape(*np.shape(ranked), -1)
    near = np.linalg.norm(top.astype(np.float64) - q[:, None, :], axis=2)
    mine = np.asarray(gallery_class)[ranked] == np.asarray(query_class)[:, None]
    squared = (q ** 2).sum(1)[:, None] + (g ** 2).sum(1)[None, :] - 2.0 * q @ g.T
    far = np.sqrt(np.clip(squared, 0.0, None))
    mates = np.asarray(gallery_class)[pool][None, :] == np.asarray(query_class)[:, None]
    keep = mine.any(axis=1) & mates.any(axis=1)
    if not keep.any():
        return {"ratio": None, "queries": 0}
    top_mean = (near * mine).sum(1)[keep] / mine.sum(1)[keep]
    class_mean = (far * mates).sum(1)[keep] / mates.sum(1)[keep]
    return {"ratio": round(float(top_mean.mean() / class_mean.mean()), 4), "queries": int(keep.sum())}
