"""The hash database: packed binary codes plus per-item metadata and a key index in a folder,
memory-mapped. The layout, the stable keys and the crash-safety argument are in docs/HASHDB.md.

Segment files are never modified once committed; a commit is one atomic `os.replace` of
manifest.json, so a kill at any moment leaves the old database or the new one. Ids are
insertion indices and survive compaction (which merges adjacent segments in order).
`DNH_TEST_CRASH_AT` (see `segments.crash_point`) kills the process at: mid-codes,
after-codes, mid-meta, after-meta, before-manifest, mid-manifest, after-manifest, and
compact-after-codes, compact-after-meta, compact-before-manifest, compact-mid-manifest,
compact-after-manifest.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from dnhcli.errors import DataError, InputError
from dnhcli.index.codes import validate_bits
from dnhcli.index.rerank import rerank_spec
from dnhcli.manifest import canonical_json, fsync_dir, package_versions
from dnhcli.stores.deletions import (
    DELETED_NAME,
    PURGED,
    deletion_name,
    is_deleted,
    read_deleted,
    write_deleted,
)
from dnhcli.stores.locate import DatabaseLockedError as DatabaseLockedError  # re-exported
from dnhcli.stores.locate import acquire_write_lock, release_write_lock
from dnhcli.stores.metadata import encode_metadata, item_keys
from dnhcli.stores.reader import HashDBReader, refuse_bad_appends
from dnhcli.stores.segments import (
    FORMAT,
    FORMAT_VERSION,
    MANIFEST,
    FileWriter,
    Segment,
    crash_point,
    is_segment_file,
    leftover_of_create,
    load,
    merge_segments,
    read_manifest,
    sealed,
    segment_files,
    segment_name,
    write_segment,
)

MAX_SEGMENTS = 16
MODEL_FILE = "encoder.onnx"  # the exported encoder a database was built with
BIT_ORDER = "np.packbits big-endian: component j is bit 7 - j % 8 of byte j // 8"


@lru_cache(maxsize=1)
def _versions() -> dict[str, str]:
    return package_versions()


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _store_model(folder: Path, source: Path) -> dict[str, Any]:
    """Copy an exported encoder into the database folder (fsynced); its manifest entry."""
    name = MODEL_FILE
    digest = hashlib.sha256()
    try:
        writer = FileWriter(folder / name)
        with open(source, "rb") as handle:
            while block := handle.read(1 << 20):
                digest.update(block)
                writer.write(block)
        facts = writer.finish()
    except OSError as exc:
        (folder / name).unlink(missing_ok=True)
        raise DataError(f"cannot store the model in {folder}: {exc}",
                        hint="check free disk space and permissions") from None
    return {"name": name, "bytes": facts["bytes"], "sha256": digest.hexdigest()}


class HashDB(HashDBReader):
    """An on-disk database of packed binary codes and their metadata (see the module docs).

    Use `HashDB.create` or `HashDB.open`, then `with db:` or `db.close()`. Reading needs no
    lock; the first `add`/`compact` takes the folder's write lock until `close`.
    """

    max_segments: int = MAX_SEGMENTS  # compact when an append makes more segments than this

    def __init__(self, path: Path, manifest: dict[str, Any], segments: list[Segment]) -> None:
        self.path = path
        self._manifest = manifest
        self._segments = segments
        self._starts = np.array([s.start for s in segments], dtype=np.int64)
        self._deleted = read_deleted(path, manifest.get("deleted"), manifest.get("count", 0))
        self._lock_fd: int | None = None
        self._closed = False

    # ---- opening and closing -------------------------------------------------------------
    @classmethod
    def create(cls, path: Path | str, bits: int, model_fingerprint: str | None = None,
               model_info: dict[str, Any] | None = None, model_file: Path | None = None,
               vectors: bool = False) -> HashDB:
        """Create an empty database in a new or empty folder; it holds the write lock.
        `model_file` (an exported encoder.onnx) is stored in it, so that it can be searched
        without naming the model; with `vectors`, every item stores a re-rank vector
        (`dnhcli.index.rerank`) and searches can be two-stage."""
        path, bits = Path(path), validate_bits(bits)
        if model_fingerprint is not None and not isinstance(model_fingerprint, str):
            raise InputError(f"model fingerprint must be a string, got {type(model_fingerprint).__name__}")
        if model_info is not None and not isinstance(model_info, dict):
            raise InputError(f"model info must be a dict, got {type(model_info).__name__}")
        try:
            model_info = json.loads(canonical_json(model_info or {}))
        except (TypeError, ValueError) as exc:
            raise InputError(f"model info is not JSON-serialisable: {exc}") from None
        if path.exists() and not path.is_dir():
            raise InputError(f"cannot create a hash database at {path}: it is a file",
                             hint="choose a new or empty folder")
        if path.is_dir() and any(not leftover_of_create(entry.name) for entry in os.scandir(path)):
            exists = (path / MANIFEST).exists()
            raise InputError(f"a hash database already exists at {path}" if exists
                             else f"cannot create a hash database in {path}: the folder is not empty",
                             hint="open it to add codes, or choose another folder" if exists
                             else "choose a new or empty folder")
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InputError(f"cannot create folder {path}: {exc.strerror}") from None
        db = cls(path, {}, [])
        db._acquire_lock()
        if any(not leftover_of_create(entry.name) for entry in os.scandir(path)):
            db.close()
            raise InputError(f"cannot create a hash database in {path}: another process wrote to it")
        stored = _store_model(path, Path(model_file)) if model_file is not None else None
        manifest: dict[str, Any] = {"format": FORMAT, "format_version": FORMAT_VERSION, "bits": bits,
                    "code_bytes": bits // 8, "bit_order": BIT_ORDER, "count": 0,
                    "model_fingerprint": model_fingerprint, "model_info": model_info,
                    "created": _now(), "checksum": "crc32", "next_segment": 0, "segments": [],
                    **({"model_file": stored} if stored else {}),
                    **({"rerank": rerank_spec(bits)} if vectors else {})}
        db._commit(manifest)
        fsync_dir(path.absolute().parent)
        return db

    @classmethod
    def open(cls, path: Path | str, verify: bool = True) -> HashDB:
        """Open a database by memory map; `verify` also checks every file's crc32."""
        path = Path(path)
        db = cls(path, *load(path))
        if verify:
            db.verify()
        return db

    def close(self) -> None:
        """Release the write lock (if held) and the memory maps."""
        self._release_lock()
        self._segments, self._flat, self._chunks, self._closed = [], None, None, True

    def __enter__(self) -> HashDB:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        self._release_lock()

    def __repr__(self) -> str:
        return f"HashDB({str(self.path)!r}, bits={self.bits}, count={len(self)})"

    # ---- writing -------------------------------------------------------------------------
    def add(self, packed_codes: np.ndarray, metadata: Sequence[Mapping[str, Any]] | None = None,
            vectors: np.ndarray | None = None) -> np.ndarray:
        """Append codes (N, bits/8) uint8, one metadata dict each and, in a database that stores
        them, re-rank vectors (N, bits) int8; returns their ids (int64).

        Metadata values must be JSON-able (numpy values and paths are converted); "id" is
        assigned by the database and, if given, must equal the id the item gets.
        """
        codes = self._check_codes(packed_codes, "codes to add")
        vectors = self._check_vectors(vectors, len(codes))
        records, given = encode_metadata(metadata, len(codes))
        keys = item_keys(metadata, len(codes))
        self._start_writing()
        start = len(self)
        refuse_bad_appends(given, start, keys, self.find([k for k in keys if k is not None]))
        if len(codes) == 0:
            return np.zeros(0, np.int64)
        name = segment_name(self._manifest["next_segment"])
        facts = self._write(lambda: write_segment(self.path, name, codes, records, keys, vectors), name)
        entry = {"name": name, "start": start, "count": len(codes), "files": facts}
        self._commit({**self._manifest, "count": start + len(codes), "next_segment":
                      self._manifest["next_segment"] + 1, "segments": [*self._manifest["segments"], entry]},
                     new_segment=name)
        if len(self._segments) > self.max_segments:
            try:
                self._compact(self._compaction_start())
            except DataError:
                pass  # the append is committed; a compaction without room waits for the next one
        return np.arange(start, start + len(codes), dtype=np.int64)

    def delete(self, ids: Sequence[int] | np.ndarray) -> np.ndarray:
        """Delete items by id (one commit: all or none); returns the ids, sorted. A deleted item is
        never returned again; `compact` then removes its code, key and metadata from the files."""
        self._start_writing()
        wanted = np.unique(np.asarray(ids, dtype=np.int64).reshape(-1)) if len(ids) else np.zeros(0, np.int64)
        bad = wanted[(wanted < 0) | (wanted >= len(self))]
        if bad.size:
            raise InputError(f"id {bad[0]} is not in the hash database {self.path} ({len(self)} ids)")
        again = wanted[is_deleted(self._deleted, wanted)]
        if again.size:
            raise InputError(f"item {again[0]} was deleted already")
        if not wanted.size:
            return wanted
        name = deletion_name(self._manifest["next_segment"])
        try:
            entry = write_deleted(self.path, name, np.union1d(self._deleted, wanted))
            fsync_dir(self.path)
        except OSError as exc:
            (self.path / name).unlink(missing_ok=True)
            raise DataError(f"cannot write to hash database {self.path}: {exc}",
                            hint="check free disk space and permissions; the database is unchanged") from None
        old = self._manifest.get("deleted")
        self._commit({**self._manifest, "next_segment": self._manifest["next_segment"] + 1,
                      "deleted": entry}, prefix="delete-", new_file=name)
        if old:
            (self.path / old["name"]).unlink(missing_ok=True)
        return wanted

    def compact(self) -> None:
        """Merge all segments into one (ids, order and results are unchanged) and remove the data
        of every deleted item from the files."""
        self._start_writing()
        if len(self._segments) > 1 or self._unpurged():
            self._compact(0)

    def _unpurged(self) -> bool:
        """Whether a deleted item still has its data in a segment."""
        for item in self._deleted.tolist():
            segment = self._segments[int(np.searchsorted(self._starts, item, side="right")) - 1]
            local = item - segment.start
            begin, end = int(segment.offsets[local]), int(segment.offsets[local + 1])
            if segment.meta[begin:end].tobytes() != PURGED or segment.codes[local].any() or (
                    segment.vectors is not None and segment.vectors[local].any()):
                return True
        return False

    def _compaction_start(self) -> int:
        """First segment of the tail to merge: the last two, extended left while the next one is
        at most twice the merged tail, so segment sizes shrink geometrically and each item is
        rewritten O(log N) times over many appends."""
        counts = [s.count for s in self._segments]
        first, tail = len(counts) - 2, counts[-1] + counts[-2]
        while first > 0 and counts[first - 1] <= 2 * tail:
            first -= 1
            tail += counts[first]
        return first

    def _compact(self, first: int) -> None:
        sources = self._segments[first:]
        name = segment_name(self._manifest["next_segment"])
        facts = self._write(lambda: merge_segments(self.path, name, sources, self._deleted), name)
        entry = {"name": name, "start": sources[0].start, "count": sum(s.count for s in sources),
                 "files": facts}
        self._commit({**self._manifest, "next_segment": self._manifest["next_segment"] + 1,
                      "segments": [*self._manifest["segments"][:first], entry]}, prefix="compact-",
                     new_segment=name)
        for source in sources:
            for file in source.paths.values():
                file.unlink(missing_ok=True)

    def _write(self, write: Any, name: str) -> dict[str, Any]:
        """Run a segment writer; on failure remove its files and raise DataError."""
        try:
            facts = write()
            fsync_dir(self.path)
            return facts
        except OSError as exc:
            for file in segment_files(self.path, name).values():
                file.unlink(missing_ok=True)
            raise DataError(f"cannot write to hash database {self.path}: {exc}",
                            hint="check free disk space and permissions; the database is unchanged") from None

    def _commit(self, manifest: dict[str, Any], prefix: str = "", new_segment: str | None = None,
                new_file: str | None = None) -> None:
        """Atomically replace manifest.json (the commit point) and map the new segments; if the
        manifest cannot be written, the uncommitted `new_segment`'s or `new_file`'s files are
        removed too."""
        manifest = sealed({**manifest, "format_version": FORMAT_VERSION, "updated": _now(),
                           "versions": _versions()})
        text = canonical_json(manifest).encode("utf-8")
        crash_point(f"{prefix}before-manifest")
        tmp = self.path / f".{MANIFEST}.tmp-{os.getpid()}"
        try:
            writer = FileWriter(tmp)
            writer.write_half_then_crash(text, f"{prefix}mid-manifest")
            writer.write(text)
            writer.finish()
            os.replace(tmp, self.path / MANIFEST)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            for file in segment_files(self.path, new_segment).values() if new_segment else ():
                file.unlink(missing_ok=True)
            if new_file:
                (self.path / new_file).unlink(missing_ok=True)
            raise DataError(f"cannot write to hash database {self.path}: {exc}",
                            hint="check free disk space and permissions; the database is unchanged") from None
        crash_point(f"{prefix}after-manifest")
        fsync_dir(self.path)
        self._install(manifest)

    def _install(self, manifest: dict[str, Any]) -> None:
        mapped = {s.name: s for s in self._segments}
        self._segments = [mapped.get(e["name"]) or Segment.open(self.path, e, manifest["code_bytes"])
                          for e in manifest["segments"]]
        self._starts = np.array([s.start for s in self._segments], dtype=np.int64)
        self._flat = self._chunks = None  # copies and indexes would miss what was just written
        if manifest.get("deleted") != self._manifest.get("deleted"):
            self._deleted = read_deleted(self.path, manifest.get("deleted"), manifest["count"])
        self._manifest = manifest

    def _start_writing(self) -> None:
        """Take the write lock (once), catch up with the manifest on disk, remove stray files."""
        self._check_open()
        if self._lock_fd is not None:
            return
        self._acquire_lock()
        current = read_manifest(self.path)
        if current["manifest_sha256"] != self._manifest["manifest_sha256"]:
            self._install(current)
        referenced = {e["name"] for e in current["segments"]}
        deleted = (current.get("deleted") or {}).get("name")
        for entry in os.scandir(self.path):
            stray = entry.name.startswith(f".{MANIFEST}.tmp-") or (
                is_segment_file(entry.name) and entry.name.split(".")[0] not in referenced) or (
                DELETED_NAME.match(entry.name) and entry.name != deleted)
            if stray:
                Path(entry.path).unlink(missing_ok=True)

    def _acquire_lock(self) -> None:
        self._lock_fd = acquire_write_lock(self.path)

    def _release_lock(self) -> None:
        fd, self._lock_fd = getattr(self, "_lock_fd", None), None
        release_write_lock(fd)
