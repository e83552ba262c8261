"""`--plot`: the strict precision-recall curve over Hamming radius, and per-organ bars."""

from __future__ import annotations

import os
from pathlib import Path

from dnhcli.evaluation.protocol import Evaluation


def write_plot(evaluation: Evaluation, path: Path) -> None:
    """Write a two-panel PNG atomically (matplotlib, headless)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    k = evaluation.ks[0]
    fig, (curve, bars) = plt.subplots(1, 2, figsize=(11, 4.2), constrained_layout=True)
    curve.plot(evaluation.recall_curve, evaluation.precision_curve, marker=".")
    for r in sorted({0, 1, evaluation.radius}):
        curve.annotate(f"r={r}", (evaluation.recall_curve[r], evaluation.precision_curve[r]),
                       textcoords="offset points", xytext=(4, 4), fontsize=8)
    curve.set(xlabel="recall (same organ and disease)", ylabel="precision",
              title=f"Precision-recall over Hamming radius 0..{evaluation.bits}", xlim=(0, 1.02),
              ylim=(0, 1.02))
    curve.grid(alpha=0.3)
    per_organ = evaluation.per_organ()
    names = list(per_organ)
    series = ((f"reference mAP@{k}", "reference", f"mAP@{k}"), (f"strict mAP@{k}", "strict", f"mAP@{k}"),
              (f"strict P@{k}", "strict", f"P@{k}"), (f"nDCG@{k} (standard)", "strict", f"nDCG@{k}"))
    width = 0.8 / len(series)
    for i, (label, section, key) in enumerate(series):
        values = [per_organ[n][section][key] or 0.0 for n in names]
        bars.bar([x + i * width for x in range(len(names))], values, width, label=label)
    bars.set_xticks([x + width * (len(series) - 1) / 2 for x in range(len(names))],
                    [f"{n}\n({per_organ[n]['queries']} queries)" for n in names])
    bars.set(ylim=(0, 1.05), title=f"Per organ, tie break: {evaluation.tie_break}")
    bars.legend(fontsize=8, loc="lower right")
    bars.grid(axis="y", alpha=0.3)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fig.savefig(tmp, dpi=110, format="png")
        os.replace(tmp, path)
    finally:
        plt.close(fig)
        tmp.unlink(missing_ok=True)
