"""`hash`: images -> K-bit codes appended to a hash database (created on first use).

The inputs are planned into keyed units (`dnhcli.ingest.plan`), decoded and encoded by an
engine (this process, or a Ray actor pool), and appended by one writer in committed chunks.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from dnhcli.data.dataset import PreparedDataset
from dnhcli.data.images import CHUNK, count_inputs
from dnhcli.deploy.backends import Backend, load_backend
from dnhcli.errors import DnhError, InputError
from dnhcli.ingest.decode import Decoder
from dnhcli.ingest.local import Encoded, run_local
from dnhcli.ingest.plan import Known, Unit, plan_files, plan_pacs, plan_split
from dnhcli.ingest.writer import FailureLog, Writer
from dnhcli.progress import ProgressFn, no_progress
from dnhcli.stores import create_store, open_store, store_exists
from dnhcli.stores.locate import shown

Store = Any  # a HashDB (folder) or a PostgresStore: the same calls

ON_DUPLICATE = ("skip", "replace", "error")
ON_ERROR = ("stop", "skip")
ENGINES = ("local", "ray")


@dataclass(frozen=True)
class HashConfig:
    """What to hash (files and folders, a dataset split, or a PACS), with which model and
    engine, into which DB.

    `on_duplicate`: what to do with an image whose key is stored already: `skip` it, `replace`
    the stored item (deleted, then the new one added: a new id), or refuse the whole run with
    `error` before anything is written. `on_error`: an image that cannot be read `stop`s the
    run (with `--engine local` every input is read before anything is written) or is `skip`ped
    and reported; by default `skip` for a PACS or `--engine ray`, `stop` otherwise."""

    model: Path
    db: Path | str  # a folder, or a postgresql:// URL
    inputs: tuple[Path, ...] = ()
    source: str | None = None  # a PACS: orthanc+http://host:port or dicomweb+http://... (`dnhcli.ingest`)
    data: Path | None = None
    split: str | None = None
    chunk: int = CHUNK
    on_duplicate: str = "skip"
    engine: str = "local"
    workers: int = 2  # Ray actors
    threads: int = 1  # encoder threads per Ray actor
    address: str | None = None  # a Ray cluster to join
    on_error: str | None = None
    failure_log: Path | None = None
    since: datetime | None = None  # PACS: instances received (DICOMweb: studies dated) since
    checkpoint: Path | None = None  # Orthanc: list only the changes since the last complete run

    @property
    def skip_errors(self) -> bool:
        if self.on_error is not None:
            return self.on_error == "skip"
        return self.source is not None or self.engine == "ray"


@dataclass(frozen=True)
class HashResult:
    db: Path | str  # a folder, or a postgresql:// URL
    count: int
    added: int
    bits: int
    created: bool
    skipped: int = 0
    replaced: int = 0
    failed: int = 0
    failed_keys: list[str] = field(default_factory=list)
    failure_log: str | None = None
    engine: str = "local"

    def to_json(self) -> dict[str, Any]:
        return {"db": shown(self.db), "count": self.count, "added": self.added, "skipped": self.skipped,
                "replaced": self.replaced, "bits": self.bits, "created": self.created,
                "failed": self.failed, "failed_keys": self.failed_keys, "failure_log": self.failure_log,
                "engine": self.engine}


class _Plan:
    """The units of the configured inputs, planned again for each pass; for an Orthanc
    checkpoint, the change the listing starts after and the one the next run will."""

    def __init__(self, config: HashConfig) -> None:
        self.config, self.after, self.newest = config, None, None
        self.source: Any = None
        given = [config.source is not None, bool(config.inputs), config.data is not None]
        if sum(given) > 1:
            raise InputError("give one of --source, image files or --data/--split, not both")
        if config.split is not None and config.data is None:
            raise InputError("--split needs --data DIR (a prepared dataset)")
        if not any(given):
            raise InputError("nothing to hash",
                             hint="give image files or folders, --data DIR or --source URL")
        if (config.since or config.checkpoint) and config.source is None:
            raise InputError("--since and --checkpoint are for a PACS --source")
        if config.source is not None:
            from dnhcli.ingest.checkpoint import read_checkpoint
            from dnhcli.ingest.pacs import open_source

            self.source = open_source(config.source)
            if config.checkpoint is not None:
                if self.source.kind != "orthanc":
                    raise InputError("--checkpoint needs an Orthanc source (Orthanc's change log)",
                                     hint="for DICOMweb, give --since DATE")
                if config.since is not None:
                    raise InputError("give --since or --checkpoint, not both")
                self.after = read_checkpoint(config.checkpoint, self.source.shown)
                self.newest = self.source.last_change()  # before listing: nothing arriving now is missed
        if config.data is not None:
            self.dataset = PreparedDataset.open(config.data)
            self.split = config.split or "gallery"
            self.dataset.split(self.split)  # an unknown split fails here

    def units(self, known: Known) -> Iterator[Unit]:
        if self.source is not None:
            return plan_pacs(self.source, known, self.config.since, self.after)
        if self.config.data is not None:
            return plan_split(self.dataset, self.split, known, self.config.chunk)
        return plan_files(self.config.inputs, known, self.config.chunk)

    def total(self) -> int:
        """How many images, where that is cheap to know (0 for a PACS: unknown)."""
        if self.source is not None:
            return 0
        if self.config.data is not None:
            return len(self.dataset.split(self.split))
        return count_inputs(self.config.inputs)


def open_or_create(db: Path | str, backend: Backend) -> tuple[Store, bool]:
    """Open `db` checked against the model, or create it for this model (`create` refuses a
    folder holding anything but the lock file an interrupted create may leave)."""
    existing = open_existing(db, backend)
    if existing is not None:
        return existing, False
    with tempfile.TemporaryDirectory(prefix="dnh-model-") as scratch:
        model_file = _exported(backend, Path(scratch) / "encoder.onnx")
        return create_store(db, backend.bits, model_fingerprint=backend.fingerprint,
                            model_info=backend.info, model_file=model_file, vectors=True), True


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

    Each committed chunk is one crash-safe append, so an interruption keeps the chunks that
    were done and a re-run adds the rest."""
    _check(config)
    backend = backend or load_backend(config.model)
    plan = _Plan(config)
    before = open_existing(config.db, backend)
    replace, skip = config.on_duplicate == "replace", config.skip_errors
    decoder = Decoder(backend.input_side, config.source)
    known = Known(before, replace=replace)

    def open_database() -> Store:
        return before if before is not None else open_or_create(config.db, backend)[0]

    writer = Writer(open_database, known, config.chunk, replace, progress, plan.total())
    failures = FailureLog(config.failure_log)
    try:
        if config.on_duplicate == "error":  # keys only: refuse before anything is decoded or written
            for _ in plan.units(Known(before, refuse=True)):
                pass
        if not skip and config.engine == "local":  # read every input before the database changes
            for unit in plan.units(Known(before, replace=replace)):
                decoder.decode(unit)
        for batch in _engine(config, plan.units(known), decoder, backend):
            if batch.failures and not skip:  # the one line says it: no log
                writer.commit()
                first = batch.failures[0]
                raise InputError(first.error, hint=first.hint)
            failures.add(batch.failures)
            writer.feed(batch)
        writer.commit()
        database = writer.database or before
        count = int(database.live) if database is not None else 0
    finally:
        failures.close()
        for handle in {id(d): d for d in (writer.database, before) if d is not None}.values():
            handle.close()
    if config.checkpoint is not None and plan.newest is not None and not failures.count:
        from dnhcli.ingest.checkpoint import write_checkpoint

        write_checkpoint(config.checkpoint, plan.source.shown, plan.newest)  # type: ignore[union-attr]
    return HashResult(db=config.db, count=count, added=writer.added, bits=backend.bits,
                      created=before is None and writer.database is not None, skipped=known.skipped,
                      replaced=writer.replaced, failed=failures.count, failed_keys=failures.keys,
                      failure_log=str(failures.path) if failures.count else None, engine=config.engine)


def _check(config: HashConfig) -> None:
    if config.chunk < 1:
        raise InputError(f"--chunk must be at least 1, got {config.chunk}")
    for value, allowed, name in ((config.on_duplicate, ON_DUPLICATE, "--on-duplicate"),
                                 (config.on_error, (*ON_ERROR, None), "--on-error"),
                                 (config.engine, ENGINES, "--engine")):
        if value not in allowed:
            raise InputError(f"{name} must be one of {', '.join(a for a in allowed if a)}, got {value!r}")
    if config.workers < 1 or config.threads < 1:
        raise InputError("--workers and --threads must be at least 1")
    if config.engine == "local" and config.address:
        raise InputError("--address joins a Ray cluster: give it with --engine ray")


def _engine(config: HashConfig, units: Iterator[Unit], decoder: Decoder, backend: Backend
            ) -> Iterator[Encoded]:
    if config.engine == "local":
        return run_local(units, decoder, backend, config.chunk)
    from dnhcli.ingest.ray_engine import RaySettings, run_ray

    settings = RaySettings(workers=config.workers, threads=config.threads, address=config.address)
    return run_ray(units, Path(config.model), backend.fingerprint, backend.bits, backend.input_side,
                   config.source, settings)
