"""What each training epoch records: loss terms, validation retrieval, code robustness."""

from __future__ import annotations

import csv
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import torch

from dnhcli.data.dataset import SplitData
from dnhcli.evaluation.metrics import average_precision_at_k, relevance
from dnhcli.index.codes import codes_from_continuous, distinct_codes, fragile_fraction, mean_tie_size
from dnhcli.index.search import topk

LOSS_NAMES = ("loss_class", "loss_j1", "loss_j2", "loss_disc", "loss_quant", "loss_centre", "loss_total",
              "loss_instance")
VAL_K = 100


@dataclass(frozen=True)
class EpochStats:
    """One row of summary.csv."""

    epoch: int
    loss_class: float
    loss_j1: float
    loss_j2: float
    loss_disc: float
    loss_quant: float
    loss_total: float
    val_organ_map: float | None
    val_disease_map: float | None
    fragile_fraction: float | None
    distinct_codes: int | None
    train_seconds: float
    images_per_second: float
    loss_centre: float = 0.0  # the centres objective's term (0 with the dnh objective)
    loss_instance: float = 0.0  # NT-Xent of the two views, unweighted (0 without the instance term)
    # code spread of a validated epoch: distinct codes among the train images, and the mean tie
    # size (mean over items of how many items of the split, itself included, share its code)
    train_distinct_codes: int | None = None
    val_mean_tie: float | None = None
    train_mean_tie: float | None = None

    def describe(self) -> str:
        text = f"loss {self.loss_total:.3f}  disc {self.loss_disc:.3f}"
        if self.val_organ_map is None or self.val_disease_map is None:
            return text
        return f"{text}  val mAP@{VAL_K} organ {self.val_organ_map:.3f} disease {self.val_disease_map:.3f}"


NOT_VALIDATED: dict[str, float | int | None] = {
    "val_organ_map": None, "val_disease_map": None, "fragile_fraction": None, "distinct_codes": None,
    "train_distinct_codes": None, "val_mean_tie": None, "train_mean_tie": None}


def validation_metrics(val_h: np.ndarray, train_h: np.ndarray, val: SplitData,
                       train: dict[str, torch.Tensor]) -> dict[str, float | int | None]:
    """Organ- and disease-level mAP@100 of val against train (Hamming on sign codes), the share
    of fragile components (|h| < 0.01), and the distinct codes and mean tie size of each split."""
    val_codes, train_codes = codes_from_continuous(val_h), codes_from_continuous(train_h)
    val_labels = np.asarray(val.labels)[:, 1:3]
    train_labels = torch.stack([train["organ"], train["disease"]], dim=1).numpy()
    _, ranked = topk(val_codes, train_codes, VAL_K)
    organ = average_precision_at_k(relevance(ranked, val_labels[:, 0], train_labels[:, 0]))
    disease = average_precision_at_k(relevance(ranked, val_labels, train_labels))
    return {
        "val_organ_map": round(float(organ.mean()), 6),
        "val_disease_map": round(float(disease.mean()), 6),
        "fragile_fraction": round(fragile_fraction(val_h), 6),
        "distinct_codes": distinct_codes(val_codes),
        "train_distinct_codes": distinct_codes(train_codes),
        "val_mean_tie": round(mean_tie_size(val_codes), 4),
        "train_mean_tie": round(mean_tie_size(train_codes), 4),
    }


def write_summary(path: Path, history: list[EpochStats]) -> None:
    """Rewrite summary.csv (one row per epoch) atomically from the run's history."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=[f.name for f in fields(EpochStats)])
        writer.writeheader()
        writer.writerows(asdict(row) for row in history)
    os.replace(tmp, path)
