"""Planning: the inputs listed as work units, each with the keys of its images, before any
pixel is decoded; images stored already (or met earlier in the run) are left out.

A unit is one picture file, one DICOM file or PACS instance (all its frames), or a slice of
a `.npy` stack or of a dataset split. Units are plain JSON, so a Ray worker on another
machine can decode one; the keys are those of `dnhcli.data.keys`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from dnhcli.data import keys
from dnhcli.data.dataset import PreparedDataset
from dnhcli.data.dicom import is_dicom
from dnhcli.data.images import IMAGE_SUFFIXES, expand_roots, is_stack, load_npy
from dnhcli.errors import InputError

SLICE = 256  # images of a .npy stack or a dataset split per unit


@dataclass
class Unit:
    """What to read (`kind`: picture, dicom, npy, split or pacs; `path` absolute, `shown` as
    given), the key of each of its images, and which of them to hash (`keep`)."""

    kind: str
    path: str
    shown: str
    keys: list[str]
    keep: list[int]
    base: str = ""  # the key the image keys derive from, should the pixels disagree with the header
    start: int = 0  # npy, split: the first index; pacs: the listed frame count is len(keys)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> Unit:
        return cls(**json.loads(text))

    @property
    def kept_keys(self) -> list[str]:
        return [self.keys[i] for i in self.keep]


class Known:
    """The stored-or-seen test of one pass: a key is known if the database holds it or this
    pass met it before (the same file given twice); `refuse` (`--on-duplicate error`) refuses a
    stored key, `replace` lets stored keys through (their items are replaced)."""

    def __init__(self, database: Any | None, refuse: bool = False, replace: bool = False) -> None:
        self.database, self.refuse, self.replace = database, refuse, replace
        self.seen: set[str] = set()
        self.skipped = 0

    def stored(self, names: Sequence[str]) -> np.ndarray:
        if self.database is None or self.replace or not len(self.database):
            return np.zeros(len(names), bool)
        return self.database.find(list(names)) >= 0

    def __call__(self, names: Sequence[str], probe: str | None = None) -> np.ndarray:
        """Which of `names` to leave out; `probe` is one more key whose presence marks them all
        stored (a PACS instance listed with one frame whose frames are stored as `[i]`)."""
        found = self.stored([*names, probe] if probe else names)
        if probe:
            found = found[:-1] | found[-1]
        if self.refuse and found.any():
            key = names[int(np.argmax(found))]
            raise InputError(f"{int(found.sum())} of the images are stored already (e.g. key {key!r})",
                             hint="rerun with --on-duplicate skip to add only the new images")
        out = found | np.array([k in self.seen for k in names], bool)
        self.seen.update(k for k, known in zip(names, out) if not known)
        self.skipped += int(out.sum())
        return out


def plan_files(paths: Sequence[Path], known: Known, size: int = SLICE) -> Iterator[Unit]:
    """Units of files and folders (as `dnh hash` reads them: see `dnhcli.data.images`);
    `.npy` stacks in slices of at most `size` images."""
    for path, root in expand_roots(paths):
        absolute, suffix = str(path.absolute()), path.suffix.lower()
        if suffix == ".npy":
            yield from _npy_units(path, absolute, keys.file_key(path, root), known, min(size, SLICE))
            continue
        if suffix in IMAGE_SUFFIXES or not is_dicom(path):
            base = keys.file_key(path, root)
            kind, names = "picture", [base]
        else:  # the file's digest only where it has no SOPInstanceUID: it reads the whole file
            uid, count = keys.dicom_instance(path)
            base = f"dicom:{uid}" if uid else keys.file_key(path, root)
            kind, names = "dicom", keys.item_keys(base, count, count > 1)
        keep = np.flatnonzero(~known(names)).tolist()
        if keep:
            yield Unit(kind, absolute, str(path), names, keep, base)


def _npy_units(path: Path, absolute: str, base: str, known: Known, size: int) -> Iterator[Unit]:
    raw = load_npy(path)
    stacked = is_stack(raw)
    if stacked and len(raw) == 0:
        raise InputError(f"{path}: holds no image (shape {raw.shape})")
    for start in range(0, len(raw), size) if stacked else range(1):
        count = min(size, len(raw) - start) if stacked else 1
        names = [f"{base}[{start + i}]" for i in range(count)] if stacked else [base]
        keep = np.flatnonzero(~known(names)).tolist()
        if keep:
            yield Unit("npy", absolute, str(path), names, keep, base, start, {"stacked": stacked})


def plan_split(dataset: PreparedDataset, split: str, known: Known, size: int = SLICE) -> Iterator[Unit]:
    """Units of a prepared dataset's split, at most `size` (and SLICE) items each, keyed by the
    keys stored with it where it has them (`PreparedDataset.item_keys`)."""
    every, path, size = dataset.item_keys(split), str(dataset.path.absolute()), min(size, SLICE)
    for start in range(0, len(every), size):
        names = every[start:start + size]
        keep = np.flatnonzero(~known(names)).tolist()
        if keep:
            yield Unit("split", path, split, names, keep, start=start)


def plan_pacs(source: Any, known: Known, since: datetime | None = None,
              after_change: int | None = None) -> Iterator[Unit]:
    """Units of a PACS's instances (all, those since a date, or those after an Orthanc change
    sequence number), keyed by SOPInstanceUID from the listing alone."""
    listing = source.instances_after(after_change) if after_change is not None else source.instances(since)
    for instance in listing:
        base = f"dicom:{instance.uid}"
        names = keys.item_keys(base, instance.frames, instance.frames > 1)
        keep = np.flatnonzero(~known(names, probe=f"{base}[0]" if instance.frames == 1 else None)).tolist()
        if keep:
            yield Unit("pacs", instance.ident, f"{source.kind}:{instance.ident}", names, keep, base)
