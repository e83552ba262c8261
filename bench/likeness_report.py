"""The likeness section of docs/RESULTS.md, from `likeness_results.py`'s figures."""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np

ALTERATIONS = ("exact", "jpeg", "intensity+10", "intensity-10", "contrast", "shift1", "shift2",
               "rotate5", "rescale0.9", "rescale1.1", "noise")
ORGANS = ("Breast", "Pneumonia", "Retina")
BYTES = {"hamming": 6, "two_stage": 54}  # per item at 48 bits: the code, plus the int8 vector


def _cell(runs: list[dict[str, float]], key: str, digits: int = 3) -> str:
    values = [r[key] for r in runs if key in r]
    if not values:
        return "-"
    mean = float(np.mean(values))
    std = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def render(rows: dict[str, list[dict[str, float]]], labels: dict[str, str], split_seeds: list[int],
           seeds: list[int], args: argparse.Namespace, seconds: float, cpu: str) -> str:
    lines = ["## Likeness search (issue 24): two-stage search and instance recall", "",
             f"Produced by `python bench/likeness_results.py` ({seconds / 60:.1f} min for this invocation, "
             f"on {cpu}; trainings one thread each, {args.jobs} at a time). Split seeds "
             f"{', '.join(map(str, split_seeds))} x training seeds {', '.join(map(str, seeds))} "
             f"(PCA + ITQ: one fit per split); mean ± sample std over those runs. 48 bits. Tie-aware "
             "figures (ties counted over every order, [EVALUATION.md](EVALUATION.md)); instance recall "
             f"on a seeded sample of {args.instance_sample} gallery images per run, each altered and "
             "searched against the whole gallery; two-stage: k x 10 Hamming candidates plus the whole "
             "tie at the cut, re-scored by the cosine of the int8 continuous codes. Bytes per item: "
             f"{BYTES['hamming']} (Hamming only) or {BYTES['two_stage']} (two-stage).", "",
             "### Class figures", "",
             "| method | ranking | strict mAP@10 | strict nDCG@10 | reference mAP@10 | "
             + " | ".join(f"P@10 {o}" for o in ORGANS) + " | " + " | ".join(f"mMV@10 {o}" for o in ORGANS)
             + " | likeness ratio | distinct gallery codes | mean tie size | training s |",
             "|---|---|" + "---|" * 13]
    for name, runs in rows.items():
        for stage in ("hamming", "two_stage"):
            lines.append(" | ".join([
                f"| {labels[name]}", "Hamming only" if stage == "hamming" else "two-stage",
                _cell(runs, f"{stage}.strict_mAP@10"), _cell(runs, f"{stage}.strict_nDCG@10"),
                _cell(runs, f"{stage}.reference_mAP@10"),
                *(_cell(runs, f"{stage}.P@10.{o}") for o in ORGANS),
                *(_cell(runs, f"{stage}.mMV@10.{o}") for o in ORGANS),
                _cell(runs, f"{stage}.likeness"), _cell(runs, "distinct_gallery_codes", 0),
                _cell(runs, "mean_tie_size", 1), _cell(runs, "train_s", 0)]) + " |")
    for k in (1, 10):
        lines += ["", f"### Instance recall@{k}: the original among the first {k} for an altered copy", "",
                  "| method | ranking | " + " | ".join(ALTERATIONS) + " |",
                  "|---|---|" + "---|" * len(ALTERATIONS)]
        for name, runs in rows.items():
            for stage in ("hamming", "two_stage"):
                lines.append(" | ".join([
                    f"| {labels[name]}", "Hamming only" if stage == "hamming" else "two-stage",
                    *(_cell(runs, f"{stage}.recall@{k}.{a}", 2) for a in ALTERATIONS)]) + " |")
    first = next(iter(rows))
    lines += targets(rows[first], labels[first])
    return "\n".join(lines)


TARGETS = [  # (what, key, goal: at least, or below -goal when negative)
    ("exact copy, recall@1", "two_stage.recall@1.exact", 0.99),
    *((f"{a}, recall@1", f"two_stage.recall@1.{a}", 0.95) for a in
      ("jpeg", "intensity+10", "intensity-10", "contrast", "shift1", "shift2", "rescale0.9", "rescale1.1",
       "noise")),
    ("rotate5, recall@10", "two_stage.recall@10.rotate5", 0.95),
    ("strict mAP@10", "two_stage.strict_mAP@10", 0.88),
    ("standard (strict) nDCG@10", "two_stage.strict_nDCG@10", 0.90),
    ("reference mAP@10", "two_stage.reference_mAP@10", 0.995),
    ("mMV@10 Breast (ResNet-18 accuracy)", "two_stage.mMV@10.Breast", 0.863),
    ("mMV@10 Pneumonia (ResNet-18 accuracy)", "two_stage.mMV@10.Pneumonia", 0.854),
    ("mMV@10 Retina (ResNet-18 accuracy)", "two_stage.mMV@10.Retina", 0.524),
    ("likeness ratio inside a class (below 1)", "two_stage.likeness", -1.0),
]


def targets(runs: list[dict[str, float]], label: str) -> list[str]:
    """Issue 24's targets against `runs` (the default's two-stage figures): met, or the gap."""
    lines = ["", f"### Issue 24's targets: {label}, two-stage", "",
             "| target | goal | measured | |", "|---|---|---|---|"]
    for what, key, goal in TARGETS:
        values = [r[key] for r in runs if key in r]
        if not values:
            continue
        mean = float(np.mean(values))
        met = mean < -goal if goal < 0 else mean >= goal
        bound = f"< {-goal:g}" if goal < 0 else f">= {goal:g}"
        gap = "met" if met else f"missed by {abs(mean - abs(goal)):.3f}"
        lines.append(f"| {what} | {bound} | {mean:.3f} | {gap} |")
    lines += ["", "What was tried against the missed targets, with its figures: [TRAINING.md](TRAINING.md), "
              "section \"The instance term\"; the speed targets: [BENCHMARKS.md](BENCHMARKS.md), section "
              "\"Two-stage search against Hamming-only search\"."]
    return lines


def flat(rows: dict[str, list[dict[str, float]]]) -> dict[str, Any]:
    """Means per method, for a quick look in Python."""
    return {name: {key: float(np.mean([r[key] for r in runs if key in r])) for key in runs[0]}
            for name, runs in rows.items() if runs}
