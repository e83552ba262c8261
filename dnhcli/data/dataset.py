"""The prepared dataset on disk: per split, memory-mappable `.npy` arrays, plus `manifest.json`.

Layout of a dataset folder:

    manifest.json               what the folder holds (see docs and `build_manifest`)
    {split}_images.npy          (N, 28, 28) uint8 grey pixels, 0-255
    {split}_labels.npy          (N, 3) int32 columns: class, organ, disease
    {split}_origin.npy          (N, 3) int32 columns: subset, official split, index in it
    {split}_raw_labels.npy      (N, W) int16: the subset's own label vector, -1 padded
    {split}_keys.npy            (N,) unicode: each item's key, as `dnh hash` keys its file
                                (format version 2: `prepare-data --images` only)
    {split}_patients.npy        (N,) int32: a patient number local to the dataset (numbered in
                                order of first appearance; -1 unknown), never an identifier
                                (format version 2 only)

for split in train, val, gallery, query. In a version-2 folder a row of labels (-1, -1, -1)
is an unlabelled item (`"labelled": false` in the manifest when every item is one). A folder
is written whole into a temporary sibling and renamed into place, so an interrupted run leaves
nothing half-made.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dnhcli.data.keys import dataset_key
from dnhcli.data.splits import SPLITS
from dnhcli.errors import DataError
from dnhcli.folders import check_output_folder as check_folder
from dnhcli.folders import staged_folder
from dnhcli.manifest import file_digest, json_digest, read_json, write_json
from dnhcli.progress import ProgressFn, no_progress

FORMAT = "dnh-dataset"
FORMAT_VERSION = 1  # MedMNIST and synthetic folders: unchanged, so their bytes stay the same
KEYED_VERSION = 2  # adds {split}_keys.npy and {split}_patients.npy, and unlabelled rows
READ_VERSIONS = (FORMAT_VERSION, KEYED_VERSION)
ARRAYS = ("images", "labels", "origin", "raw_labels")
OPTIONAL_ARRAYS = ("keys", "patients")
LABEL_COLUMNS = ("class", "organ", "disease")
ORIGIN_COLUMNS = ("subset", "official_split", "index")


@dataclass(frozen=True)
class SplitData:
    """The arrays of one split (memory-mapped when read from disk)."""

    images: np.ndarray
    labels: np.ndarray
    origin: np.ndarray
    raw_labels: np.ndarray
    keys: np.ndarray | None = None
    patients: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def classes(self) -> np.ndarray:
        return self.labels[:, 0]

    @property
    def organs(self) -> np.ndarray:
        return self.labels[:, 1]

    @property
    def diseases(self) -> np.ndarray:
        return self.labels[:, 2]


def manifest_head(version: int, side: int, pixels: str, seed: int, ratios: tuple[float, ...],
                  max_per_class: int | None, synthetic: bool) -> dict[str, Any]:
    """The first fields of every dataset manifest: format, version, image shape, how the pixels
    were made, and the split's settings."""
    return {"format": FORMAT, "format_version": version, "image_shape": [side, side],
            "pixels": pixels, "seed": seed, "ratios": dict(zip(SPLITS, ratios)),
            "max_per_class": max_per_class, "synthetic": synthetic}


def check_output_folder(out: Path, force: bool) -> None:
    """Refuse an output folder that holds anything, unless `force` and it is a dnh dataset."""
    check_folder(out, force, FORMAT, "dataset")


def write_dataset(out: Path, splits: dict[str, SplitData], manifest: dict[str, Any],
                  force: bool = False, progress: ProgressFn = no_progress) -> dict[str, Any]:
    """Write a dataset folder atomically; returns the manifest with file checksums added."""
    check_output_folder(out, force)
    with staged_folder(out) as tmp:
        files: dict[str, Any] = {}
        names = [*ARRAYS, *(n for n in OPTIONAL_ARRAYS if getattr(splits[SPLITS[0]], n) is not None)]
        total, done = len(SPLITS) * len(names), 0
        for split in SPLITS:
            for name in names:
                path = tmp / f"{split}_{name}.npy"
                array = np.ascontiguousarray(getattr(splits[split], name))
                with open(path, "wb") as handle:
                    np.save(handle, array, allow_pickle=False)
                    handle.flush()
                    os.fsync(handle.fileno())
                files[path.name] = {"sha256": file_digest(path), "shape": list(array.shape),
                                    "dtype": str(array.dtype)}
                done += 1
                progress("write dataset", done, total)
        manifest = {**manifest, "files": files}
        write_json(tmp / "manifest.json", manifest)
    return manifest


def _check_sizes(path: Path, manifest: dict[str, Any]) -> None:
    """The manifest's split sizes must be those it records for every array file of the split."""
    for split in SPLITS:
        try:
            sizes = {manifest["splits"][split]}
            sizes |= {manifest["files"][f"{split}_{kind}.npy"]["shape"][0] for kind in ARRAYS}
            sizes |= {manifest["files"][f"{split}_{kind}.npy"]["shape"][0] for kind in OPTIONAL_ARRAYS
                      if f"{split}_{kind}.npy" in manifest["files"]}
        except (KeyError, TypeError, IndexError):
            raise DataError(f"dataset manifest {path / 'manifest.json'} has no complete entry for the "
                            f"{split} split", hint="prepare the dataset again") from None
        if len(sizes) != 1:
            raise DataError(f"dataset manifest {path / 'manifest.json'} disagrees with itself on the size "
                            f"of the {split} split ({', '.join(map(str, sorted(sizes, key=str)))})",
                            hint="the manifest was edited after the dataset was prepared: prepare it again")


class PreparedDataset:
    """A prepared dataset folder, opened read-only; arrays are memory-mapped on demand."""

    def __init__(self, path: Path, manifest: dict[str, Any]) -> None:
        self.path = path
        self.manifest = manifest

    @classmethod
    def open(cls, path: Path | str, verify: bool = False) -> PreparedDataset:
        """Open and check a dataset folder; `verify=True` also checks every file's sha256."""
        path = Path(path)
        if not (path / "manifest.json").is_file():
            raise DataError(f"not a prepared dnh dataset: {path} (no manifest.json)",
                            hint="create one with `dnh prepare-data --out DIR`")
        manifest = read_json(path / "manifest.json", "dataset manifest")
        if manifest.get("format") != FORMAT:
            raise DataError(f"not a prepared dnh dataset: {path} (format {manifest.get('format')!r})")
        if manifest.get("format_version") not in READ_VERSIONS:
            raise DataError(f"dataset {path} has format version {manifest.get('format_version')}, "
                            f"this dnh reads versions {' and '.join(map(str, READ_VERSIONS))}",
                            hint="prepare it again with this version of dnh")
        missing = [k for k in ("files", "classes", "organs", "subsets", "splits") if k not in manifest]
        if missing:
            raise DataError(f"dataset manifest {path / 'manifest.json'} lacks {', '.join(missing)}",
                            hint="prepare the dataset again")
        _check_sizes(path, manifest)
        dataset = cls(path, manifest)
        if verify:
            dataset.verify()
        return dataset

    @property
    def fingerprint(self) -> str:
        """sha256 of the manifest (which holds every file's sha256): names this exact dataset."""
        return json_digest(self.manifest)

    @property
    def class_names(self) -> list[str]:
        return [c["name"] for c in self.manifest["classes"]]

    @property
    def organ_names(self) -> list[str]:
        return list(self.manifest["organs"])

    @property
    def class_organs(self) -> list[int]:
        """The organ index of every class, in class order."""
        return [int(c["organ"]) for c in self.manifest["classes"]]

    @property
    def ordinal_organs(self) -> list[int]:
        """The organs whose diseases are ordered grades (an "ordinal-regression" source task)."""
        return [o for o, sub in enumerate(self.manifest["subsets"])
                if str(sub.get("task", "")).startswith("ordinal")]

    @property
    def labelled(self) -> bool:
        """False for a set of unlabelled images (`prepare-data --images` with no labels)."""
        return bool(self.manifest.get("labelled", True))

    def item_keys(self, split: str, start: int = 0, stop: int | None = None) -> list[str]:
        """The keys of items start..stop of a split: those stored with it (a folder prepared from
        images keeps the keys `dnh hash` gives its files), else `dataset:<fingerprint>/split/i`."""
        data = self.split(split)
        stop = len(data) if stop is None else min(stop, len(data))
        if data.keys is not None:
            return [str(k) for k in data.keys[start:stop]]
        return [dataset_key(self.fingerprint, split, i) for i in range(start, stop)]

    def disease_names(self, organ: int) -> list[str]:
        return list(self.manifest["subsets"][organ]["diseases"])

    def split(self, name: str) -> SplitData:
        """The arrays of one split, memory-mapped, checked against the manifest."""
        if name not in SPLITS:
            raise DataError(f"unknown split {name!r}", hint=f"choose from: {', '.join(SPLITS)}")
        arrays = {}
        for kind in (*ARRAYS, *OPTIONAL_ARRAYS):
            file = f"{name}_{kind}.npy"
            expected = self.manifest["files"].get(file)
            if kind in OPTIONAL_ARRAYS and expected is None:
                continue
            try:
                array = np.load(self.path / file, mmap_mode="r", allow_pickle=False)
            except (OSError, ValueError, OverflowError) as exc:
                raise DataError(f"cannot read {self.path / file}: {exc}") from None
            if expected is None or list(array.shape) != expected["shape"] or (
                    str(array.dtype) != expected["dtype"]):
                raise DataError(f"{self.path / file} does not match the dataset manifest",
                                hint="the folder was changed after it was prepared: prepare it again")
            arrays[kind] = array
        self._check_labels(self.path / f"{name}_labels.npy", arrays["labels"])
        return SplitData(**arrays)

    def _check_labels(self, file: Path, labels: np.ndarray) -> None:
        """Every (class, organ, disease) row must name a class, organ and disease of the manifest
        (the commands index the name lists with them)."""
        diseases = np.array([len(self.disease_names(o)) for o in range(len(self.organ_names))], np.int64)
        values = np.asarray(labels, np.int64)
        if values.ndim != 2 or values.shape[1] != len(LABEL_COLUMNS):
            raise DataError(f"{file} does not match the dataset manifest (shape {values.shape})",
                            hint="the folder was changed after it was prepared: prepare it again")
        klass, organ, disease = values.T
        bad = (klass < 0) | (klass >= len(self.class_names)) | (organ < 0) | (organ >= len(diseases))
        limit = diseases[np.clip(organ, 0, len(diseases) - 1)] if len(diseases) else np.zeros_like(organ)
        bad |= (disease < 0) | (disease >= limit)
        if self.manifest.get("format_version") == KEYED_VERSION:  # (-1, -1, -1): an unlabelled item
            bad &= ~((klass == -1) & (organ == -1) & (disease == -1))
        if bad.any():
            raise DataError(f"{file} row {int(np.argmax(bad))} names a class, organ or disease that the "
                            f"dataset manifest does not have",
                            hint="the folder was changed after it was prepared: prepare it again")

    def verify(self) -> None:
        """Check every array file against the sha256 recorded in the manifest."""
        for file, expected in self.manifest["files"].items():
            path = self.path / file
            if not path.is_file() or file_digest(path) != expected["sha256"]:
                raise DataError(f"{path} is missing or changed since the dataset was prepared",
                                hint="prepare the dataset again")
