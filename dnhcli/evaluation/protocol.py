"""Both evaluation protocols on packed codes: query codes ranked against gallery codes.

`evaluate_codes` works on chunks of queries (memory bounded by `chunk_elements`, not by the
number of queries) and keeps one value per query and figure, so every figure can be averaged
overall and per organ. Figures (see docs/EVALUATION.md):

- reference: mAP@k (relevant = same organ), nDCG@k (ideal DCG from the re-sorted top k);
- strict: mAP@k and P@k (relevant = same organ and disease), nDCG@k (ideal DCG from the whole
  gallery), mMV@k (the query's class wins the majority vote of its top k), precision within
  Hamming radius `radius`; a PR curve over radius 0..K;
- tie_aware: the expected mAP@k, nDCG@k (standard) and P@k over random orders of tied items.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dnhcli.errors import InputError
from dnhcli.evaluation.metrics import (
    average_precision_at_ks,
    dcg_figures,
    discounts,
    ideal_dcg,
    majority_vote_at_ks,
    precision_at_ks,
    radius_curves,
)
from dnhcli.evaluation.tie_aware import TieGroups
from dnhcli.index.codes import distinct_codes, validate_bits
from dnhcli.index.ranking import asymmetric_rank, distance_histogram
from dnhcli.index.search import topk
from dnhcli.progress import ProgressFn, no_progress

TIE_BREAKS = ("gallery-order", "asymmetric")
DEFAULT_KS = (10, 100, 1000)
CHUNK_ELEMENTS = 1 << 20  # per-chunk (queries x ranks): about 100 MB of work arrays at most

SECTIONS = ("reference", "strict", "tie_aware.reference", "tie_aware.strict")


@dataclass
class Evaluation:
    """Per-query figures of one evaluation, and how it was run."""

    ks: tuple[int, ...]
    bits: int
    radius: int
    tie_break: str
    organ_names: list[str]
    query_organ: np.ndarray
    figures: dict[str, dict[str, np.ndarray]]
    precision_curve: np.ndarray
    recall_curve: np.ndarray
    counts: dict[str, Any] = field(default_factory=dict)

    def summary(self, mask: np.ndarray | None = None) -> dict[str, Any]:
        """Mean of every figure over the queries in `mask` (all by default), nested by section."""
        out: dict[str, Any] = {}
        for section, names in self.figures.items():
            values = {}
            for name, per_query in names.items():
                chosen = per_query if mask is None else per_query[mask]
                finite = chosen[~np.isnan(chosen)]
                values[name] = round(float(finite.mean()), 6) if len(finite) else None
            *parents, leaf = section.split(".")  # "tie_aware.strict" nests under "tie_aware"
            target = out
            for parent in parents:
                target = target.setdefault(parent, {})
            target[leaf] = values
        return out

    def per_organ(self) -> dict[str, Any]:
        out = {}
        for index, name in enumerate(self.organ_names):
            mask = self.query_organ == index
            if mask.any():
                out[name] = {"queries": int(mask.sum()), **self.summary(mask)}
        return out

    def pr_curve(self) -> dict[str, list[float] | list[int]]:
        return {"radius": list(range(self.bits + 1)),
                "precision": [round(float(v), 6) for v in self.precision_curve],
                "recall": [round(float(v), 6) for v in self.recall_curve]}

    def to_json(self) -> dict[str, Any]:
        return {**self.summary(), "pr_curve": self.pr_curve(), "per_organ": self.per_organ(),
                "codes": self.counts}


def class_ids(query_labels: np.ndarray, gallery_labels: np.ndarray
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Compact class ids of the (organ, disease) pairs of both sides, and the grade matrix
    grade[query class, gallery class] (2 same class, 1 same organ, 0 else)."""
    both = np.concatenate([query_labels, gallery_labels])
    pairs, inverse = np.unique(both, axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    same_organ = pairs[:, 0][:, None] == pairs[:, 0][None, :]
    grade = same_organ.astype(np.int8) + np.eye(len(pairs), dtype=np.int8)
    return inverse[:len(query_labels)], inverse[len(query_labels):], grade, pairs


def _labels(labels: np.ndarray, n: int, what: str) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim != 2 or labels.shape != (n, 2) or not np.issubdtype(labels.dtype, np.integer):
        raise InputError(f"{what} labels must be integers of shape ({n}, 2) (organ, disease), "
                         f"got {labels.dtype} {labels.shape}")
    return labels.astype(np.int64)


def evaluate_codes(query_codes: np.ndarray, gallery_codes: np.ndarray, query_labels: np.ndarray,
                   gallery_labels: np.ndarray, ks: tuple[int, ...] = DEFAULT_KS, *,
                   query_h: np.ndarray | None = None, tie_break: str = "gallery-order",
                   radius: int = 2, organ_names: list[str] | None = None, threads: int | None = None,
                   chunk_elements: int = CHUNK_ELEMENTS, progress: ProgressFn = no_progress) -> Evaluation:
    """Evaluate packed query codes (Q, K/8) against packed gallery codes (N, K/8) with labels
    (organ, disease) of shape (Q, 2) and (N, 2). `tie_break="asymmetric"` needs the continuous
    query codes `query_h` (Q, K)."""
    if tie_break not in TIE_BREAKS:
        raise InputError(f"tie break must be one of {', '.join(TIE_BREAKS)}, got {tie_break!r}")
    if tie_break == "asymmetric" and query_h is None:
        raise InputError("the asymmetric tie break needs the continuous query codes")
    ks = tuple(sorted(set(int(k) for k in ks)))
    if not ks or ks[0] < 1:
        raise InputError(f"k must be positive integers, got {ks}")
    nq, n = len(query_codes), len(gallery_codes)
    if n == 0:
        raise InputError("the gallery is empty")
    bits = validate_bits(np.shape(gallery_codes)[1] * 8)
    qlab, glab = _labels(query_labels, nq, "query"), _labels(gallery_labels, n, "gallery")
    qclass, gclass, grade, pairs = class_ids(qlab, glab)
    same_organ = (grade >= 1).astype(np.int32)
    if radius < 0 or radius > bits:
        raise InputError(f"radius must lie in 0..{bits}, got {radius}")
    length = min(ks[-1], n)
    step = max(1, chunk_elements // max(length, bits + 1))
    names = organ_names or [str(o) for o in range(int(pairs[:, 0].max()) + 1)]
    parts: list[dict[str, dict[str, np.ndarray]]] = []
    curves: list[tuple[np.ndarray, np.ndarray]] = []
    cuts = {k: 0 for k in ks}
    at_zero = 0.0
    asymmetric = tie_break == "asymmetric"
    for lo in range(0, nq, step):
        hi = min(nq, lo + step)
        hist = distance_histogram(query_codes[lo:hi], gallery_codes, gclass, len(pairs), threads)
        cq = qclass[lo:hi]
        rows = np.arange(hi - lo)
        strict_d = hist[rows, :, cq]
        organ_d = np.einsum("qdc,qc->qd", hist, same_organ[cq])
        size_d = hist.sum(axis=2)
        if asymmetric:
            ranked, groups = asymmetric_rank(query_codes[lo:hi], np.asarray(query_h)[lo:hi],
                                             gallery_codes, length, gclass, len(pairs), threads)
            g_size, g_strict = groups.sum(axis=2), groups[rows, :, cq]
            g_organ = np.einsum("qgc,qc->qg", groups, same_organ[cq])
        else:
            ranked = topk(query_codes[lo:hi], gallery_codes, length, threads)[1]
            g_size, g_strict, g_organ = size_d, strict_d, organ_d
        grades = grade[cq[:, None], gclass[ranked]]
        figures, boundaries = chunk_figures(grades, ks, strict_d.sum(1), organ_d.sum(1),
                                             (g_size, g_strict, g_organ))
        for k, votes in majority_vote_at_ks(gclass[ranked], cq, ks).items():
            figures["strict"][f"mMV@{k}"] = votes
        for k in ks:
            cuts[k] += boundaries[k]
        at_zero += float(size_d[:, 0].sum())
        precision, recall = radius_curves(strict_d, size_d)
        figures["strict"][f"P@r{radius}"] = precision[:, radius]
        parts.append(figures)
        curves.append((precision.sum(0), recall.sum(0)))
        progress("evaluate", hi, nq)
    merged = {s: {name: np.concatenate([p[s][name] for p in parts]) if parts else np.zeros(0)
                  for name in (parts[0][s] if parts else {})} for s in SECTIONS}
    count = max(nq, 1)
    return Evaluation(
        ks=ks, bits=bits, radius=radius, tie_break=tie_break, organ_names=list(names),
        query_organ=qlab[:, 0], figures=merged,
        precision_curve=sum((c[0] for c in curves), np.zeros(bits + 1)) / count,
        recall_curve=sum((c[1] for c in curves), np.zeros(bits + 1)) / count,
        counts={"queries": nq, "gallery": n, "distinct_query_codes": distinct_codes(query_codes),
                "distinct_gallery_codes": distinct_codes(gallery_codes),
                "mean_gallery_at_distance_0": round(at_zero / count, 3),
                **{f"queries_cut_inside_a_tie@{k}": cuts[k] for k in ks},
                **{f"queries_left_out_of_reference_nDCG@{k}":
                   int(np.isnan(merged["reference"][f"nDCG@{k}"]).sum()) if parts else 0 for k in ks}})


def chunk_figures(grades: np.ndarray, ks: tuple[int, ...], strict_total: np.ndarray,
                  organ_total: np.ndarray, groups: tuple[np.ndarray, np.ndarray, np.ndarray]
                  ) -> tuple[dict[str, dict[str, np.ndarray]], dict[int, int]]:
    """Per-query figures of one chunk, exact on the ranked list and expected over tie orders,
    and for each k how many queries have their cut inside a tie group."""
    organ_ap = average_precision_at_ks(grades >= 1, ks)
    strict_ap = average_precision_at_ks(grades == 2, ks)
    ndcg_ref, ndcg_std = dcg_figures(grades, ks, strict_total, organ_total)
    precision = precision_at_ks(grades == 2, ks)
    size, strict, organ = groups
    gains = 3 * strict + (organ - strict)
    cumulative = np.cumsum(discounts(grades.shape[1]))
    expected: dict[str, dict[int, np.ndarray]] = {"ref": {}, "mAP": {}, "nDCG": {}, "P": {}}
    boundaries = {}
    for k in ks:
        tie = TieGroups(size, k)
        boundaries[k] = int(tie.boundary.sum())
        expected["ref"][k] = tie.expected_ap(organ)
        expected["mAP"][k] = tie.expected_ap(strict)
        ideal = ideal_dcg(np.minimum(strict_total, tie.k), np.minimum(organ_total, tie.k), cumulative)
        dcg = tie.expected_dcg(gains)
        expected["nDCG"][k] = np.divide(dcg, ideal, out=np.zeros_like(dcg), where=ideal > 0)
        expected["P"][k] = tie.expected_precision(strict)
    out = {
        "reference": {**{f"mAP@{k}": organ_ap[k] for k in ks}, **{f"nDCG@{k}": ndcg_ref[k] for k in ks}},
        "strict": {**{f"mAP@{k}": strict_ap[k] for k in ks}, **{f"nDCG@{k}": ndcg_std[k] for k in ks},
                   **{f"P@{k}": precision[k] for k in ks}},
        "tie_aware.reference": {f"mAP@{k}": expected["ref"][k] for k in ks},
        "tie_aware.strict": {f"{name}@{k}": expected[name][k] for name in ("mAP", "nDCG", "P") for k in ks},
    }
    return out, boundaries
