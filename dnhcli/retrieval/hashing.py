"""`hash`: images -> K-bit codes appended to a hash database (created on first use)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dnhcli.data.dataset import PreparedDataset
from dnhcli.data.images import CHUNK, ImageChunk, count_inputs, iter_files, iter_split
from dnhcli.deploy.backends import Backend, load_backend
from dnhcli.errors import InputError
from dnhcli.index.codes import codes_from_continuous
from dnhcli.index.hashdb import HashDB
from dnhcli.progress import ProgressFn, no_progress


@dataclass(frozen=True)
class HashConfig:
    """What to hash (files and folders, or a dataset split), with which model, into which DB."""

    model: Path
    db: Path
    inputs: tuple[Path, ...] = ()
    data: Path | None = None
    split: str | None = None
    chunk: int = CHUNK


@dataclass(frozen=True)
class HashResult:
    db: Path
    count: int
    added: int
    bits: int
    created: bool

    def to_json(self) -> dict[str, Any]:
        return {"db": str(self.db), "count": self.count, "added": self.added, "bits": self.bits,
                "created": self.created}


def _chunks(config: HashConfig, side: int) -> tuple[Iterator[ImageChunk], int]:
    if config.data is not None:
        if config.inputs:
            raise InputError("give image files or --data/--split, not both")
        dataset = PreparedDataset.open(config.data)
        split = config.split or "gallery"
        return iter_split(dataset, split, config.chunk), len(dataset.split(split))
    if config.split is not None:
        raise InputError("--split needs --data DIR (a prepared dataset)")
    if not config.inputs:
        raise InputError("nothing to hash", hint="give .npy/.png files or folders, or --data DIR")
    for _ in iter_files(config.inputs, config.chunk, side):
        pass  # a first pass checks every file, so a bad one fails before the database changes
    return iter_files(config.inputs, config.chunk, side), count_inputs(config.inputs)


def open_or_create(db: Path, backend: Backend) -> tuple[HashDB, bool]:
    """Open `db` checked against the model, or create it for this model (`create` refuses a
    folder holding anything but the lock file an interrupted create may leave)."""
    if (db / "manifest.json").exists() or (db.exists() and not db.is_dir()):
        database = HashDB.open(db)
        database.check_model(backend.bits, backend.fingerprint)
        return database, False
    return HashDB.create(db, backend.bits, model_fingerprint=backend.fingerprint,
                         model_info=backend.info), True


def hash_into_db(config: HashConfig, progress: ProgressFn = no_progress,
                 backend: Backend | None = None) -> HashResult:
    """Encode every input image and append its code and metadata to the database.

    Inputs are checked before the database is touched; each chunk is one crash-safe
    append, so an interruption keeps the chunks that were done."""
    if config.chunk < 1:
        raise InputError(f"--chunk must be at least 1, got {config.chunk}")
    backend = backend or load_backend(config.model)
    chunks, total = _chunks(config, backend.input_side)
    first = next(chunks)  # reading errors surface before anything is created
    database, created = open_or_create(config.db, backend)
    added = 0
    with database:
        for chunk in _chain(first, chunks):
            codes = codes_from_continuous(backend.encode(chunk.images))
            database.add(codes, chunk.metadata)
            added += len(codes)
            progress("hash images", added, total)
        count = len(database)
    return HashResult(db=config.db, count=count, added=added, bits=backend.bits, created=created)


def _chain(first: ImageChunk, rest: Iterator[ImageChunk]) -> Iterator[ImageChunk]:
    yield first
    yield from rest
