"""The one writer: encoded batches appended to the store in committed chunks of whole units,
and unreadable inputs written to a failure log."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from dnhcli.ingest.decode import Failure
from dnhcli.ingest.local import Encoded
from dnhcli.ingest.plan import Known
from dnhcli.progress import ProgressFn


class FailureLog:
    """Unreadable inputs: counted, their keys kept, and one JSON line each in a log file
    (created at the first failure; by default `dnh-hash-failures-<UTC time>.jsonl` here)."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self.keys: list[str] = []
        self.sources: list[str] = []
        self._handle: Any = None

    @property
    def count(self) -> int:
        return len(self.keys)

    def add(self, failures: list[Failure]) -> None:
        for failure in failures:
            if self._handle is None:
                if self.path is None:
                    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
                    self.path = Path(f"dnh-hash-failures-{stamp}.jsonl")
                self._handle = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()
            record = {"time": datetime.now(timezone.utc).isoformat(timespec="seconds"), **failure.to_json()}
            self._handle.write(json.dumps(record) + "\n")
            self._handle.flush()
            self.keys.extend(failure.keys)
            self.sources.append(failure.source)

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()


class Writer:
    """Appends batches to the database that `open_database()` gives (called at the first
    image, so nothing is created before an image was read), `chunk` images or more per commit,
    never splitting a unit; with `replace`, stored items of the same keys are deleted first."""

    def __init__(self, open_database: Callable[[], Any], known: Known, chunk: int, replace: bool,
                 progress: ProgressFn, total: int) -> None:
        self.open_database, self.known, self.chunk, self.replace = open_database, known, chunk, replace
        self.progress, self.total = progress, total
        self.database: Any = None
        self.pending: list[tuple[np.ndarray, np.ndarray, list[dict[str, Any]]]] = []
        self.size = self.added = self.replaced = self.failed = 0

    def feed(self, batch: Encoded) -> None:
        self.failed += sum(len(f.keys) for f in batch.failures)
        codes, vectors, metadata = batch.codes, batch.vectors, batch.metadata
        if batch.replanned.any():  # keys made from the pixels: not checked against the store yet
            keep = ~batch.replanned
            rows = np.flatnonzero(batch.replanned)
            if self.database is not None and not self.replace:
                stored = self.database.find([metadata[i]["key"] for i in rows]) >= 0
            else:
                stored = np.zeros(len(rows), bool)
            for row, known in zip(rows.tolist(), stored.tolist()):
                key = metadata[row]["key"]
                keep[row] = not known and key not in self.known.seen
                self.known.seen.add(key)
                self.known.skipped += int(not keep[row])
            codes, vectors, metadata = codes[keep], vectors[keep], [m for m, k in zip(metadata, keep) if k]
        if len(codes):
            self.pending.append((codes, vectors, metadata))
            self.size += len(codes)
        if self.size >= self.chunk:
            self.commit()
        else:
            self._report()

    def commit(self) -> None:
        if not self.pending:
            return
        if self.database is None:
            self.database = self.open_database()
        codes = np.concatenate([p[0] for p in self.pending])
        vectors = np.concatenate([p[1] for p in self.pending]) if self.database.has_vectors else None
        metadata = [m for p in self.pending for m in p[2]]
        if self.replace:  # a delete, then the append: a crash between them leaves the old item deleted
            old = self.database.find([m["key"] for m in metadata])
            if (old >= 0).any():
                self.replaced += len(self.database.delete(old[old >= 0]))
        self.database.add(codes, metadata, vectors)
        self.added += len(codes)
        self.pending, self.size = [], 0
        self._report()

    def _report(self) -> None:
        self.progress("hash images", self.added + self.known.skipped + self.failed, self.total)
