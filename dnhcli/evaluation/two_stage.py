"""The two-stage ranking for evaluation, and the class figures on it.

A search for k results takes as stage-1 candidates every gallery item at a Hamming distance no
larger than that of the (k x oversample)-th nearest (the whole tie at the cut), and orders them
by the cosine of the query's continuous code and the item's int8 re-rank vector (score
descending), then Hamming distance, then id: `dnhcli.index.rerank.two_stage_arrays`, the same
answer a store gives. The candidate set grows with k, so the list for @100 is not the first 100
of the list for @1000: each cut-off k is ranked by its own search for k results.

Candidates for the largest cut are found and scored once; the candidates of a smaller cut are a
prefix of them (they are sorted by Hamming distance). Ties of the two-stage ranking are items of
equal score and equal Hamming distance; the tie-aware figures treat them as the Hamming figures
treat equal distances (docs/EVALUATION.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dnhcli.evaluation.metrics import majority_vote_at_ks
from dnhcli.evaluation.protocol import CHUNK_ELEMENTS, Evaluation, chunk_figures, class_ids
from dnhcli.index.rerank import candidate_scores, check_oversample, order
from dnhcli.index.search import topk_ties
from dnhcli.progress import ProgressFn, no_progress

SECTION_ORDER = {"reference": ("mAP", "nDCG"), "strict": ("mAP", "nDCG", "P", "mMV"),
                 "tie_aware.reference": ("mAP",), "tie_aware.strict": ("mAP", "nDCG", "P")}


@dataclass
class Candidates:
    """Stage-1 candidates of a block of queries with their stage-2 scores, FAISS-style: query q's
    are [lims[q], lims[q+1]) of `hamming`, `ids` and `score`, sorted by (Hamming distance, id)."""

    lims: np.ndarray
    hamming: np.ndarray
    ids: np.ndarray
    score: np.ndarray
    gallery: int

    def ends(self, m: int) -> np.ndarray:
        """End of each query's candidates for a search with m = k x oversample (a prefix)."""
        nq = len(self.lims) - 1
        counts = np.diff(self.lims)
        if nq == 0 or self.gallery == 0:
            return self.lims[:-1].copy()
        cut = self.hamming[self.lims[:-1] + min(m, self.gallery) - 1]
        row = np.repeat(np.arange(nq), counts)
        keep = self.hamming <= cut[row]
        return self.lims[:-1] + np.bincount(row[keep], minlength=nq)

    def ranked(self, q: int, end: int) -> np.ndarray:
        """Positions of query q's candidates before `end`, in two-stage order."""
        a = int(self.lims[q])
        return a + order(self.score[a:end], self.hamming[a:end], self.ids[a:end])


def stage_candidates(query_codes: np.ndarray, query_h: np.ndarray, gallery_codes: np.ndarray,
                     vectors: np.ndarray, m: int, threads: int | None = None) -> Candidates:
    """Candidates of a search with m = k x oversample, each scored with `rerank.candidate_scores`."""
    lims, hamming, ids = topk_ties(query_codes, gallery_codes, int(m), threads)
    score = candidate_scores(query_h, lims, np.asarray(vectors)[ids])
    return Candidates(lims, hamming, ids, score, len(gallery_codes))


def _ordered(section: dict[str, np.ndarray], names: tuple[str, ...], ks: tuple[int, ...]) -> dict:
    return {f"{n}@{k}": section[f"{n}@{k}"] for n in names for k in ks if f"{n}@{k}" in section}


def evaluate_two_stage(query_codes: np.ndarray, query_h: np.ndarray, gallery_codes: np.ndarray,
                       vectors: np.ndarray, query_labels: np.ndarray, gallery_labels: np.ndarray,
                       ks: tuple[int, ...], *, oversample: int = 10, organ_names: list[str] | None = None,
                       threads: int | None = None, chunk_elements: int = CHUNK_ELEMENTS,
                       progress: ProgressFn = no_progress) -> Evaluation:
    """Reference, strict and tie-aware figures of the two-stage ranking (labels (organ,
    disease), as `evaluate_codes`); radius figures are order-free and stay with the Hamming ones."""
    oversample = check_oversample(oversample)
    ks = tuple(sorted(set(int(k) for k in ks)))
    nq, n = len(query_codes), len(gallery_codes)
    qlab, glab = np.asarray(query_labels, np.int64), np.asarray(gallery_labels, np.int64)
    qclass, gclass, grade, pairs = class_ids(qlab, glab)
    same_organ = grade >= 1
    class_count = np.bincount(gclass, minlength=len(pairs))
    strict_total, organ_total = class_count[qclass], (same_organ.astype(np.int64) @ class_count)[qclass]
    step = max(1, chunk_elements // max(n, 1))
    parts: list[dict[str, dict[str, np.ndarray]]] = []
    cuts = {k: 0 for k in ks}
    candidates_per_query = {k: 0 for k in ks}
    for lo in range(0, nq, step):
        hi = min(lo + step, nq)
        cand = stage_candidates(query_codes[lo:hi], query_h[lo:hi], gallery_codes, vectors,
                                ks[-1] * oversample, threads)
        cq = qclass[lo:hi]
        chunk: dict[str, dict[str, np.ndarray]] = {s: {} for s in SECTION_ORDER}
        for k in ks:
            ends = cand.ends(k * oversample)
            candidates_per_query[k] += int((ends - cand.lims[:-1]).sum())
            ranked, groups = _rank_groups(cand, ends, min(k, n), gclass, cq, same_organ)
            grades = grade[cq[:, None], gclass[ranked]]
            figures, boundaries = chunk_figures(grades, (k,), strict_total[lo:hi], organ_total[lo:hi],
                                                 groups)
            figures["strict"][f"mMV@{k}"] = majority_vote_at_ks(gclass[ranked], cq, (k,))[k]
            cuts[k] += boundaries[k]
            for section, values in figures.items():
                chunk[section].update(values)
        parts.append(chunk)
        progress("two-stage", hi, nq)
    merged = {s: _ordered({name: np.concatenate([p[s][name] for p in parts]) for name in parts[0][s]},
                          names, ks) if parts else {} for s, names in SECTION_ORDER.items()}
    count = max(nq, 1)
    return Evaluation(
        ks=ks, bits=int(np.shape(gallery_codes)[1]) * 8, radius=0, tie_break="two-stage",
        organ_names=list(organ_names or [str(o) for o in range(int(pairs[:, 0].max()) + 1)]),
        query_organ=qlab[:, 0], figures=merged, precision_curve=np.zeros(0), recall_curve=np.zeros(0),
        counts={"oversample": oversample,
                **{f"mean_candidates@{k}": round(candidates_per_query[k] / count, 3) for k in ks},
                **{f"queries_cut_inside_a_tie@{k}": cuts[k] for k in ks}})


def _rank_groups(cand: Candidates, ends: np.ndarray, length: int, gclass: np.ndarray, cq: np.ndarray,
                 same_organ: np.ndarray) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """The top `length` ids of each query (Q, length), and the tie groups (equal score and
    Hamming distance) that reach into them, in rank order: sizes, same-class and same-organ
    counts, each (Q, length), each group counted in full."""
    nq = len(ends)
    ranked = np.zeros((nq, length), np.int64)
    sizes, strict, organ = (np.zeros((nq, length)) for _ in range(3))
    for i in range(nq):
        pos = cand.ranked(i, int(ends[i]))
        s, d = cand.score[pos], cand.hamming[pos]
        change = np.ones(len(pos), bool)
        change[1:] = (s[1:] != s[:-1]) | (d[1:] != d[:-1])
        gid = np.cumsum(change) - 1
        groups = int(gid[length - 1]) + 1
        stop = int(np.searchsorted(gid, groups))
        ids = cand.ids[pos[:stop]]
        ranked[i] = ids[:length]
        cls = gclass[ids]
        sizes[i, :groups] = np.bincount(gid[:stop], minlength=groups)
        strict[i, :groups] = np.bincount(gid[:stop], weights=(cls == cq[i]).astype(np.float64),
                                         minlength=groups)
        organ[i, :groups] = np.bincount(gid[:stop], weights=same_organ[cq[i], cls].astype(np.float64),
                                        minlength=groups)
    return ranked, (sizes, strict, organ)


def two_stage_summary(evaluation: Evaluation) -> dict:
    """The JSON of the two-stage figures: the shape of the Hamming ones, without radius figures."""
    return {**evaluation.summary(), "per_organ": evaluation.per_organ(), "codes": evaluation.counts}
