"""`hash`: images -> K-bit codes appended to a hash database (created on first use)."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dnhcli.data.dataset import PreparedDataset
from dnhcli.data.images import CHUNK, ImageChunk, count_inputs, iter_files, iter_split
from dnhcli.deploy.backends import Backend, load_backend
from dnhcli.errors import DnhError, InputError
from dnhcli.index.codes import codes_from_continuous
from dnhcli.progress import ProgressFn, no_progress
from dnhcli.stores import create_store, open_store, store_exists
from dnhcli.stores.locate import shown

Store = Any  # a HashDB (folder) or a PostgresStore: the same calls

ON_DUPLICATE = ("skip", "replace", "error")


@dataclass(frozen=True)
class HashConfig:
    """What to hash (files and folders, or a dataset split), with which model, into which DB.
    `on_duplicate`: what to do with an image whose key is stored already: `skip` it, `replace`
    the stored item (deleted, then the new one added: a new id), or refuse the whole run with
    `error` before anything is written."""

    model: Path
    db: Path | str  # a folder, or a postgresql:// URL
    inputs: tuple[Path, ...] = ()
    source: str | None = None  # a PACS: orthanc+http://host:port (`dnhcli.retrieval.pacs`)
    data: Path | None = None
    split: str | None = None
    chunk: int = CHUNK
    on_duplicate: str = "skip"


@dataclass(frozen=True)
class HashResult:
    db: Path | str  # a folder, or a postgresql:// URL
    count: int
    added: int
    bits: int
    created: bool
    skipped: int = 0
    replaced: int = 0

    def to_json(self) -> dict[str, Any]:
        return {"db": shown(self.db), "count": self.count, "added": self.added, "skipped": self.skipped,
                "replaced": self.replaced, "bits": self.bits, "created": self.created}


class _Known:
    """The `stored` test of one pass over the inputs: a key is known if the database holds it
    or this pass met it before (the same file given twice); `error` refuses a stored key."""

    def __init__(self, database: Store | None, refuse: bool, replace: bool = False) -> None:
        self.database, self.refuse, self.seen, self.skipped = database, refuse, set[str](), 0
        self.replace = replace  # stored keys pass (their items are replaced); repeats do not

    def __call__(self, keys: Sequence[str]) -> np.ndarray:
        found = (self.database.find(list(keys)) >= 0 if self.database is not None and len(self.database)
                 and not self.replace else np.zeros(len(keys), bool))
        if self.refuse and found.any():
            key = keys[int(np.argmax(found))]
            raise InputError(f"{int(found.sum())} of the images are stored already (e.g. key {key!r})",
                             hint="rerun with --on-duplicate skip to add only the new images")
        out = found | np.array([k in self.seen for k in keys], bool)
        self.seen.update(k for k, known in zip(keys, out) if not known)
        self.skipped += int(out.sum())
        return out


def _chunks(config: HashConfig, side: int, known: _Known) -> tuple[Iterator[ImageChunk], int]:
    if config.source is not None:
        from dnhcli.retrieval.pacs import count_orthanc, iter_orthanc

        if config.inputs or config.data is not None:
            raise InputError("give a --source, image files or --data/--split: one of them")
        return iter_orthanc(config.source, config.chunk, side, known), count_orthanc(config.source)
    if config.data is not None:
        if config.inputs:
            raise InputError("give image files or --data/--split, not both")
        dataset = PreparedDataset.open(config.data)
        split = config.split or "gallery"
        return iter_split(dataset, split, config.chunk, known), len(dataset.split(split))
    if config.split is not None:
        raise InputError("--split needs --data DIR (a prepared dataset)")
    if not config.inputs:
        raise InputError("nothing to hash", hint="give image files or folders, or --data DIR")
    return iter_files(config.inputs, config.chunk, side, known), count_inputs(config.inputs)


def open_or_create(db: Path | str, backend: Backend) -> tuple[Store, bool]:
    """Open `db` checked against the model, or create it for this model (`create` refuses a
    folder holding anything but the lock file an interrupted create may leave)."""
    existing = open_existing(db, backend)
    if existing is not None:
        return existing, False
    with tempfile.TemporaryDirectory(prefix="dnh-model-") as scratch:
        model_file = _exported(backend, Path(scratch) / "encoder.onnx")
        return create_store(db, backend.bits, model_fingerprint=backend.fingerprint,
                            model_info=backend.info, model_file=model_file), True


def _exported(backend: Backend, scratch: Path) -> Path | None:
    """The encoder as ONNX, to store in a new database: written from a checkpoint, the file
    itself for an ONNX model, the encoder.onnx beside an OpenVINO IR from `dnh export`."""
    path = Path(getattr(backend, "path", ""))
    if path.suffix == ".pt":
        from dnhcli.deploy.backends import TorchBackend
        from dnhcli.deploy.export import write_onnx

        assert isinstance(backend, TorchBackend)
        write_onnx(backend, scratch)
        return scratch
    if path.suffix == ".onnx":
        return path
    beside = path.with_name("encoder.onnx")
    if path.suffix == ".xml" and beside.is_file():
        try:
            if load_backend(beside).fingerprint == backend.fingerprint:
                return beside
        except DnhError:
            pass
    return None  # a database without a stored model: search it with --model


def open_existing(db: Path | str, backend: Backend) -> Store | None:
    """The database at `db` checked against the model, or None where there is none yet."""
    if store_exists(db):
        database = open_store(db)
        try:
            database.check_model(backend.bits, backend.fingerprint)
        except DnhError:
            database.close()
            raise
        return database
    return None


def hash_into_db(config: HashConfig, progress: ProgressFn = no_progress,
                 backend: Backend | None = None) -> HashResult:
    """Encode every input image not stored yet (by key) and append its code and metadata.

    A first pass reads and checks every new input before the database is touched; each
    chunk is one crash-safe append, so an interruption keeps the chunks that were done."""
    if config.chunk < 1:
        raise InputError(f"--chunk must be at least 1, got {config.chunk}")
    if config.on_duplicate not in ON_DUPLICATE:
        raise InputError(f"--on-duplicate must be one of {', '.join(ON_DUPLICATE)}, "
                         f"got {config.on_duplicate!r}")
    backend = backend or load_backend(config.model)
    before = open_existing(config.db, backend)
    refuse, replace = config.on_duplicate == "error", config.on_duplicate == "replace"
    chunks, total = _chunks(config, backend.input_side, _Known(before, refuse, replace))
    for _ in chunks:
        pass  # the first pass checks every new input, so a bad one fails before the database changes
    # the second pass hashes what the first let through (so it never refuses: its own
    # appends are stored by then), into the database it creates once the first chunk is read
    known = _Known(before, refuse=False, replace=replace)
    chunks, _ = _chunks(config, backend.input_side, known)
    first = next(chunks, None)  # reading errors surface before anything is created
    if before is not None:
        database, created = before, False
    else:
        database, created = open_or_create(config.db, backend)
    known.database = database
    added = replaced = 0
    with database:
        for chunk in _chain(first, chunks) if first is not None else ():
            codes = codes_from_continuous(backend.encode(chunk.images))
            if replace:  # a delete, then the append: a crash between them leaves the old item deleted
                old = database.find([m["key"] for m in chunk.metadata])
                if (old >= 0).any():
                    replaced += len(database.delete(old[old >= 0]))
            database.add(codes, chunk.metadata)
            added += len(codes)
            progress("hash images", added + known.skipped, total)
        count = database.live
    return HashResult(db=config.db, count=count, added=added, bits=backend.bits, created=created,
                      skipped=known.skipped, replaced=replaced)


def _chain(first: ImageChunk, rest: Iterator[ImageChunk]) -> Iterator[ImageChunk]:
    yield first
    yield from rest
