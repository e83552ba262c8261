"""`prepare-data --images DIR`: a user's own images -> the prepared dataset `dnh train`,
`dnh evaluate` and `dnh hash --data` read, keyed as `dnh hash` keys the files (format
version 2, see `dnhcli.data.dataset`).

Classes are numbered in (group, class) name order; a one-level source has one group, "all",
and classes named as given; a two-level one names them Group_class. Where any patient is
known the split keeps each patient's images in one split (`grouped_split`), else it is the
per-class split of the MedMNIST path (`stratified_split`); both are seeded.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dnhcli.data.dataset import (
    KEYED_VERSION,
    LABEL_COLUMNS,
    SplitData,
    check_output_folder,
    manifest_head,
    write_dataset,
)
from dnhcli.data.pooling import IMAGE_SIDE
from dnhcli.data.prepare import PrepareResult
from dnhcli.data.sources.labels import PATIENT_TAG, Labels, find_labels
from dnhcli.data.sources.walk import Failure, Walked, check_keywords, check_on_error, walk
from dnhcli.data.splits import DEFAULT_RATIOS, SPLITS, cap_per_class, grouped_split, stratified_split
from dnhcli.errors import DataError, InputError
from dnhcli.manifest import package_versions
from dnhcli.progress import ProgressFn, no_progress

ONE_GROUP = "all"
ORIGIN = ("group", "unused", "index in the folder's reading order")


@dataclass(frozen=True)
class ImagesConfig:
    """Everything that decides a dataset prepared from a folder of images."""

    out: Path
    images: Path
    layout: str = "auto"
    labels: Path | None = None
    label_columns: str | None = None
    label_tags: tuple[str, ...] = ()
    on_error: str = "stop"
    seed: int = 0
    ratios: tuple[float, ...] = DEFAULT_RATIOS
    max_per_class: int | None = None
    force: bool = False


def prepare_images(config: ImagesConfig, progress: ProgressFn = no_progress) -> PrepareResult:
    """Read, label and split the folder's images and write the dataset folder atomically; a file
    that cannot be read, or has no label in a labelled set, stops the run in one line naming it
    (or is left out with `on_error="skip"`, listed in the result)."""
    check_output_folder(config.out, config.force)  # fail before any slow work
    check_on_error(config.on_error)
    if config.label_tags:
        check_keywords(config.label_tags)
    walked = walk(config.images, (PATIENT_TAG, *config.label_tags), config.on_error, IMAGE_SIDE, progress)
    labels = find_labels(walked.items, config.images, config.layout, config.labels, config.label_columns,
                         config.label_tags)
    rows = _unique(walked, _labelled_rows(walked, labels, config.on_error), config.on_error)
    if config.on_error == "skip":
        rows = _without_small_classes(walked, labels, rows)
    if not len(rows):
        raise DataError(f"--images {config.images}: no image left to prepare",
                        hint="every file was refused: see the list of skipped files")
    names, class_of, organ_of, disease_of, groups = _numbering(labels, rows)
    patient = _patient_numbers([labels.patients[i] for i in rows])
    keep = np.arange(len(rows))
    if config.max_per_class is not None:
        keep = cap_per_class(class_of, config.max_per_class, config.seed)
    rows, class_of, patient = rows[keep], class_of[keep], patient[keep]
    organ_of, disease_of = organ_of[keep], disease_of[keep]
    _check_class_sizes(names, class_of)
    if (patient >= 0).any():  # an unknown patient counts as a patient of one image
        alone = patient.max() + 1 + np.arange(len(rows))
        parts = grouped_split(class_of, np.where(patient >= 0, patient, alone), config.ratios, config.seed)
    else:
        parts = stratified_split(class_of, config.ratios, config.seed)
    empty = [name for name, part in zip(SPLITS, parts) if not len(part)]
    if empty:
        raise DataError(f"--images {config.images}: {len(rows)} images of {len(np.unique(patient))} patients "
                        f"leave the {', '.join(empty)} split(s) empty",
                        hint="the four splits need more images (or more patients)")
    keys = np.array([walked.items[i].key for i in rows], dtype=str)
    labels_array = np.column_stack([class_of, organ_of, disease_of]).astype(np.int32)
    origin = np.column_stack([organ_of, np.full(len(rows), -1), rows]).astype(np.int32)
    splits = {name: SplitData(images=walked.images[rows[part]], labels=labels_array[part],
                              origin=origin[part], raw_labels=disease_of[part, None].astype(np.int16),
                              keys=keys[part], patients=patient[part].astype(np.int32))
              for name, part in zip(SPLITS, parts)}
    skipped = walked.failures + [Failure(str(item.file), f"no label: {labels.reasons[i]}")
                                 for i, item in enumerate(walked.items)
                                 if labels.labelled and labels.pairs[i] is None]
    manifest = _manifest(config, labels, names, groups, class_of, patient, parts, len(walked.items),
                         len(skipped))
    manifest = write_dataset(config.out, splits, manifest, config.force, progress)
    return PrepareResult(out=config.out, splits={name: len(part) for name, part in zip(SPLITS, parts)},
                         classes={c["name"]: c["count"] for c in manifest["classes"]}, manifest=manifest,
                         skipped=[f.to_json() for f in skipped])


def _labelled_rows(walked: Walked, labels: Labels, on_error: str) -> np.ndarray:
    """The items to keep: all of an unlabelled set, the labelled ones of a labelled set (an item
    without a label stops the run, or is left out with `on_error="skip"`)."""
    if not labels.labelled:
        return np.arange(len(walked.items))
    for i, pair in enumerate(labels.pairs):
        if pair is None and on_error == "stop":
            raise InputError(f"{walked.items[i].file}: no label ({labels.reasons[i]})",
                             hint="label it, or rerun with --on-error skip to leave it out")
    return np.array([i for i, pair in enumerate(labels.pairs) if pair is not None], np.int64)


def _unique(walked: Walked, rows: np.ndarray, on_error: str) -> np.ndarray:
    """The rows whose key no earlier row has (the same DICOM instance in two files, a copy): a
    repeated key stops the run, or its later images are left out with `on_error="skip"`."""
    first: dict[str, int] = {}
    kept = []
    for i in rows.tolist():
        item = walked.items[i]
        if item.key in first:
            if on_error == "stop":
                raise InputError(f"{item.file}: same key {item.key} as {walked.items[first[item.key]].file}",
                                 hint="remove the copy, or rerun with --on-error skip to keep the first")
            walked.failures.append(Failure(str(item.file), f"same key {item.key} as an earlier file"))
            continue
        first[item.key] = i
        kept.append(i)
    return np.array(kept, np.int64)


def _numbering(labels: Labels, rows: np.ndarray) -> tuple[list[tuple[str, str]], np.ndarray, np.ndarray,
                                                         np.ndarray, list[str]]:
    """Classes (group, class) in name order and each row's class, organ (group) and disease
    (class within its group) number; -1 for every column of an unlabelled set."""
    if not labels.labelled:
        unset = np.full(len(rows), -1, np.int64)
        return [], unset, unset.copy(), unset.copy(), []
    pairs = [labels.pairs[i] for i in rows]
    names = sorted(set(pair for pair in pairs if pair is not None))
    groups = sorted({group for group, _ in names})
    index = {pair: c for c, pair in enumerate(names)}
    class_of = np.array([index[pair] for pair in pairs if pair is not None], np.int64)
    organ = np.array([groups.index(names[c][0]) for c in class_of], np.int64)
    within = {pair: [n for n in names if n[0] == pair[0]].index(pair) for pair in names}
    disease = np.array([within[names[c]] for c in class_of], np.int64)
    return names, class_of, organ, disease, [g or ONE_GROUP for g in groups]


def _without_small_classes(walked: Walked, labels: Labels, rows: np.ndarray) -> np.ndarray:
    """The rows of classes with at least one image per split; each image of a smaller class is
    left out as a failure that names its class (`on_error="skip"`; "stop" refuses the set)."""
    if not labels.labelled:
        return rows
    counts: dict[tuple[str, str], int] = {}
    for i in rows.tolist():
        pair = labels.pairs[i]
        if pair is not None:
            counts[pair] = counts.get(pair, 0) + 1
    kept = []
    for i in rows.tolist():
        pair = labels.pairs[i]
        if pair is not None and counts[pair] < len(SPLITS):
            walked.failures.append(Failure(str(walked.items[i].file), f"class {_class_name(pair)!r} has "
                                           f"{counts[pair]} image(s), fewer than the {len(SPLITS)} splits"))
            continue
        kept.append(i)
    return np.array(kept, np.int64)


def _patient_numbers(patients: list[str | None]) -> np.ndarray:
    """A number per patient, in order of first appearance (-1 unknown): the dataset stores these,
    never the identifier."""
    seen: dict[str, int] = {}
    return np.array([seen.setdefault(p, len(seen)) if p else -1 for p in patients], np.int64)


def _check_class_sizes(names: list[tuple[str, str]], class_of: np.ndarray) -> None:
    counts = np.bincount(class_of[class_of >= 0], minlength=len(names))
    for c, count in enumerate(counts):
        if count < len(SPLITS):
            raise DataError(f"class {_class_name(names[c])!r} has {count} image(s), fewer than the "
                            f"{len(SPLITS)} splits", hint="add images of it, or leave it out")


def _class_name(pair: tuple[str, str]) -> str:
    return f"{pair[0]}_{pair[1]}" if pair[0] else pair[1]


def _manifest(config: ImagesConfig, labels: Labels, names: list[tuple[str, str]], groups: list[str],
              class_of: np.ndarray, patient: np.ndarray, parts: list[np.ndarray], found: int,
              skipped: int) -> dict[str, Any]:
    class_rows: list[dict[str, Any]] = []
    for c, pair in enumerate(names):
        organ = groups.index(pair[0] or ONE_GROUP)
        per_split = {name: int(np.count_nonzero(class_of[part] == c)) for name, part in zip(SPLITS, parts)}
        diseases = [n[1] for n in names if (n[0] or ONE_GROUP) == groups[organ]]
        class_rows.append({"name": _class_name(pair), "organ": organ, "disease": diseases.index(pair[1]),
                           "count": sum(per_split.values()), "splits": per_split})
    subsets = []
    for o, group in enumerate(groups):
        diseases = [n[1] for n in names if (n[0] or ONE_GROUP) == group]
        subsets.append({"flag": group, "organ": group, "source": "images", "task": "multi-class",
                        "channels": 1, "license": None, "label_names": diseases, "diseases": diseases,
                        "images": sum(row["count"] for row in class_rows if row["organ"] == o)})
    return {
        **manifest_head(KEYED_VERSION, IMAGE_SIDE, "uint8 grey 0-255, each file made the input as "
                        "`dnh hash` makes it; models scale by 1/255", config.seed, config.ratios,
                        config.max_per_class, False),
        "images": {"folder": str(config.images), "images_found": found, "skipped": skipped,
                   "on_error": config.on_error},
        "labelled": labels.labelled,
        "labels": {"source": labels.source, **labels.described},
        "organs": groups,
        "subsets": subsets,
        "classes": class_rows,
        "splits": {name: len(part) for name, part in zip(SPLITS, parts)},
        "patients": {"known": int(np.count_nonzero(patient >= 0)),
                     "splits": {name: len(np.unique(patient[part][patient[part] >= 0]))
                                for name, part in zip(SPLITS, parts)},
                     "stored_as": "a number local to this dataset ({split}_patients.npy); no identifier"},
        "label_columns": list(LABEL_COLUMNS),
        "origin_columns": list(ORIGIN),
        "keys": "as `dnh hash` keys the files ({split}_keys.npy)",
        "versions": package_versions(),
    }
