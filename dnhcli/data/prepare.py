"""`prepare-data`: MedMNIST subsets (or the synthetic set) -> a split, labelled dataset folder."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dnhcli.data import medmnist_source as source
from dnhcli.data.dataset import (
    FORMAT_VERSION,
    LABEL_COLUMNS,
    ORIGIN_COLUMNS,
    SplitData,
    check_output_folder,
    manifest_head,
    write_dataset,
)
from dnhcli.data.defaults import SYNTHETIC_PER_CLASS
from dnhcli.data.pooling import IMAGE_SIDE, PooledSubset, pool_subset
from dnhcli.data.splits import DEFAULT_RATIOS, SPLITS, cap_per_class, stratified_split
from dnhcli.data.synthetic import generate_subset, synthetic_infos
from dnhcli.errors import InputError
from dnhcli.manifest import json_digest, package_versions
from dnhcli.progress import ProgressFn, no_progress


@dataclass(frozen=True)
class PrepareConfig:
    """Everything that decides a prepared dataset's content."""

    out: Path
    subsets: tuple[str, ...] = source.DEFAULT_SUBSETS
    root: Path | None = None
    download: bool = False
    synthetic: bool = False
    synthetic_per_class: int = SYNTHETIC_PER_CLASS
    seed: int = 0
    ratios: tuple[float, ...] = DEFAULT_RATIOS
    max_per_class: int | None = None
    force: bool = False


@dataclass(frozen=True)
class PrepareResult:
    """What was written: the folder, images per split and per class, the manifest."""

    out: Path
    splits: dict[str, int]
    classes: dict[str, int]
    manifest: dict[str, Any] = field(repr=False)
    skipped: list[dict[str, str]] | None = None  # --images: the files left out, and why

    def to_json(self) -> dict[str, Any]:
        extra = {} if self.skipped is None else {
            "labelled": self.manifest["labelled"], "labels": self.manifest["labels"]["source"],
            "patients": self.manifest["patients"]["splits"], "skipped": self.skipped}
        return {"out": str(self.out), "splits": self.splits, "classes": self.classes,
                "seed": self.manifest["seed"], "fingerprint": json_digest(self.manifest), **extra}


def _load_sources(config: PrepareConfig, progress: ProgressFn
                  ) -> list[tuple[source.SubsetInfo, PooledSubset, dict[str, Any]]]:
    """Every subset's pooled arrays with the provenance recorded in the manifest."""
    if config.synthetic:
        if config.synthetic_per_class < 10:
            raise InputError("--synthetic-per-class must be at least 10")
        infos = synthetic_infos()
        loaded = []
        for i, info in enumerate(infos):
            arrays = generate_subset(info, config.synthetic_per_class, config.seed)
            loaded.append((info, pool_subset(info, arrays),
                           {"generator": info.source, "per_class": config.synthetic_per_class}))
            progress("generate synthetic images", i + 1, len(infos))
        return loaded
    flags = [source.resolve_subset(name) for name in config.subsets]
    if not flags:
        raise InputError("no subsets given", hint="e.g. --subsets breast,pneumonia,retina")
    if len(set(flags)) != len(flags):
        raise InputError(f"a subset is named twice in {', '.join(config.subsets)}")
    infos = [source.subset_info(flag) for flag in flags]
    root = config.root or source.default_root()
    paths = [source.locate(info, root, config.download, progress) for info in infos]
    loaded = []
    for i, (info, path) in enumerate(zip(infos, paths)):
        pooled = pool_subset(info, source.read_npz(path))
        loaded.append((info, pooled, {"file": info.file_name, "md5": info.md5, "url": info.url}))
        progress("read MedMNIST files", i + 1, len(infos))
    return loaded


def prepare_dataset(config: PrepareConfig, progress: ProgressFn = no_progress) -> PrepareResult:
    """Pool the chosen subsets, name classes `Organ_disease`, split them seeded and stratified,
    and write the dataset folder atomically."""
    check_output_folder(config.out, config.force)  # fail before any slow work
    loaded = _load_sources(config, progress)
    organs = np.concatenate([np.full(len(p), i) for i, (_, p, _) in enumerate(loaded)])
    diseases = np.concatenate([p.diseases for _, p, _ in loaded])
    pair_ids = organs * 1000 + diseases
    keep = np.arange(len(pair_ids))
    if config.max_per_class is not None:
        keep = cap_per_class(pair_ids, config.max_per_class, config.seed)
    present = np.unique(pair_ids[keep])  # sorted: by organ, then disease
    class_of = {int(pid): c for c, pid in enumerate(present)}
    classes = np.array([class_of[int(pid)] for pid in pair_ids[keep]], dtype=np.int32)
    parts = stratified_split(classes, config.ratios, config.seed)

    width = max(p.raw_labels.shape[1] for _, p, _ in loaded)
    raw = np.concatenate([np.pad(p.raw_labels, ((0, 0), (0, width - p.raw_labels.shape[1])),
                                 constant_values=-1) for _, p, _ in loaded])
    origin = np.concatenate([np.column_stack([np.full(len(p), i), p.origin])
                             for i, (_, p, _) in enumerate(loaded)]).astype(np.int32)
    images = np.concatenate([p.images for _, p, _ in loaded])
    class_column = np.full(len(pair_ids), -1)
    class_column[keep] = classes
    labels = np.column_stack([class_column, organs, diseases]).astype(np.int32)

    splits = {}
    for name, part in zip(SPLITS, parts):
        rows = keep[part]
        splits[name] = SplitData(images=images[rows], labels=labels[rows],
                                 origin=origin[rows], raw_labels=raw[rows])
    manifest = _manifest(config, loaded, present, classes, parts)
    manifest = write_dataset(config.out, splits, manifest, config.force, progress)
    return PrepareResult(
        out=config.out,
        splits={name: len(part) for name, part in zip(SPLITS, parts)},
        classes={c["name"]: c["count"] for c in manifest["classes"]},
        manifest=manifest,
    )


def _manifest(config: PrepareConfig, loaded: list[tuple[source.SubsetInfo, PooledSubset,
              dict[str, Any]]], present: np.ndarray, classes: np.ndarray,
              parts: list[np.ndarray]) -> dict[str, Any]:
    infos = [info for info, _, _ in loaded]
    class_rows = []
    for c, pid in enumerate(present):
        organ, disease = divmod(int(pid), 1000)
        per_split = {name: int(np.count_nonzero(classes[part] == c))
                     for name, part in zip(SPLITS, parts)}
        class_rows.append({"name": f"{infos[organ].organ}_{infos[organ].diseases[disease]}",
                           "organ": organ, "disease": disease,
                           "count": sum(per_split.values()), "splits": per_split})
    return {
        **manifest_head(FORMAT_VERSION, IMAGE_SIDE,
                        "uint8 grey 0-255 (RGB converted with BT.601 luma); models scale by 1/255",
                        config.seed, config.ratios, config.max_per_class, config.synthetic),
        "organs": [info.organ for info in infos],
        "subsets": [{"flag": info.flag, "organ": info.organ, "source": info.source,
                     "task": info.task, "channels": info.channels, "license": info.license,
                     "label_names": list(info.label_names), "diseases": list(info.diseases),
                     "images": len(pooled), **extra}
                    for info, pooled, extra in loaded],
        "multilabel_rule": "no finding -> 'normal'; else the first finding set, in MedMNIST order",
        "classes": class_rows,
        "splits": {name: len(part) for name, part in zip(SPLITS, parts)},
        "label_columns": list(LABEL_COLUMNS),
        "origin_columns": list(ORIGIN_COLUMNS),
        "versions": package_versions(),
    }
