"""Reading a hash database snapshot: facts, exact search, metadata and key lookups, all of
which leave deleted items out (see `dnhcli.stores.deletions`)."""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dnhcli.errors import DataError, InputError, ModelError
from dnhcli.index.chunks import ChunkIndex
from dnhcli.index.rerank import check_vectors
from dnhcli.stores.deletions import is_deleted
from dnhcli.stores.locate import shown
from dnhcli.stores.segment_search import check_packed, range_search_segments, search_segments
from dnhcli.stores.segments import Segment
from dnhcli.stores.two_stage import NO_VECTORS_HINT, TwoStageSearch


def checked_ids(ids: Sequence[int] | np.ndarray, count: int) -> np.ndarray:
    """`ids` as a 1-D int64 array, or InputError for another shape or type or an id out of
    0 .. count - 1."""
    wanted = np.asarray(ids)
    if wanted.ndim > 1 or (wanted.size and not np.issubdtype(wanted.dtype, np.integer)):
        raise InputError(f"ids must be a 1-D list of integers, got {wanted.dtype} array of shape "
                         f"{wanted.shape}")
    wanted = wanted.reshape(-1).astype(np.int64)
    bad = wanted[(wanted < 0) | (wanted >= count)]
    if bad.size:
        raise InputError(f"id {bad[0]} is out of range: the hash database holds {count} items",
                         hint=f"ids run from 0 to {count - 1}" if count else None)
    return wanted


def refuse_other_model(where: object, db_bits: int, db_fingerprint: str | None, bits: int,
                       fingerprint: str | None) -> None:
    """ModelError unless a model of `bits` and `fingerprint` built the database `where`."""
    if bits != db_bits:
        raise ModelError(f"the model makes {bits}-bit codes but the hash database {where} holds "
                         f"{db_bits}-bit codes",
                         hint="search with the model that built the database, or rebuild it")
    if fingerprint != db_fingerprint:
        raise ModelError(f"the model's fingerprint {fingerprint} differs from the fingerprint "
                         f"{db_fingerprint} of the model that built the hash database {where}",
                         hint="search with the model that built the database, or rebuild it")


def refuse_bad_appends(given: dict[int, Any], start: int, keys: Sequence[str | None], stored: np.ndarray
                       ) -> None:
    """InputError for an append whose metadata names ids other than those it gets (from
    `start`), or whose keys are stored already (`stored`: their ids, or -1)."""
    wrong = {i: v for i, v in given.items() if not (isinstance(v, (int, np.integer)) and v == start + i)}
    if wrong:
        i, value = next(iter(wrong.items()))
        raise InputError(f"metadata record {i} has id {value!r}, but the database assigns id {start + i}",
                         hint="leave 'id' out (it is assigned); keep your own under e.g. 'source'")
    if (stored >= 0).any():
        key = [k for k in keys if k is not None][int(np.argmax(stored >= 0))]
        raise InputError(f"key {key!r} is already stored (id {int(stored.max())})",
                         hint="keys are unique: leave the item out, or delete the stored one first")


INDEX_AFTER_QUERIES = 32  # a radius search of this many queries builds the chunk index
INDEX_MIN_CODES = 65536  # below this, a scan is as fast


@dataclass(frozen=True)
class _Flat:
    """The codes of several segments as one, for the search functions (which read only these)."""

    codes: np.ndarray
    count: int
    start: int


class StoreFacts:
    """The facts every store answers from its manifest (a folder's, or PostgreSQL's facts row)."""

    _manifest: dict[str, Any]
    path: Any  # a folder, or the redacted URL of a PostgreSQL store

    @property
    def bits(self) -> int:
        return int(self._manifest["bits"])

    @property
    def model_fingerprint(self) -> str | None:
        return self._manifest["model_fingerprint"]

    @property
    def model_info(self) -> dict[str, Any]:
        return copy.deepcopy(self._manifest["model_info"] or {})

    @property
    def has_vectors(self) -> bool:
        """Whether every item stores a re-rank vector (databases written before them do not)."""
        return bool(self._manifest.get("rerank"))

    def _check_vectors(self, vectors: Any, count: int) -> np.ndarray | None:
        """Vectors to add, checked against what this database stores (InputError otherwise)."""
        if not self.has_vectors:
            if vectors is not None:
                raise InputError(f"the hash database {shown(self.path)} stores no re-rank vectors",
                                 hint="leave the vectors out, or upgrade it with `dnh db upgrade`")
            return None
        if vectors is None:
            raise InputError(f"the hash database {shown(self.path)} stores a re-rank vector per item",
                             hint="pass vectors= (dnhcli.index.rerank.quantize_vectors of the codes h)")
        return check_vectors(vectors, count, self.bits)


class HashDBReader(StoreFacts, TwoStageSearch):
    """What every open database can do without the write lock (`HashDB` adds writing)."""

    path: Path
    _manifest: dict[str, Any]
    _segments: list[Segment]
    _starts: np.ndarray
    _deleted: np.ndarray
    _closed: bool
    _flat: list[Any] | None = None  # every code in one array (`consolidate`), else None
    _chunks: ChunkIndex | None = None  # multi-index hashing for radius search, once built
    _index_first_radius = False  # a consolidated (server's) snapshot indexes at its first radius search

    def consolidate(self) -> None:
        """Hold every code in one array in memory, so that a search is one scan rather than one
        per segment, and let the first radius search of any size build the chunk index (for a
        long-running server: 6 + 6 x chunks bytes per code; 1M 48-bit codes: 24 MB, the index
        built in about 0.3 s, 10M in 4.5 s, only if radius searches come)."""
        self._check_open()
        if len(self._segments) > 1:
            self._flat = [_Flat(self.codes(), len(self), 0)]
        self._index_first_radius = True

    def build_chunk_index(self) -> None:
        """Index the codes by 16-bit chunks (multi-index hashing, `dnhcli.index.chunks`), so that
        a radius search of r < 2 x chunks takes index lookups instead of a scan."""
        self._check_open()
        if self._chunks is None and len(self):
            self._chunks = ChunkIndex(self._flat[0].codes if self._flat else self.codes(), self.bits)

    def _searched(self) -> Sequence[Any]:
        return self._flat if self._flat is not None else self._segments

    # ---- facts ---------------------------------------------------------------------------
    def __len__(self) -> int:
        """The number of ids given out: live items plus deleted ones (ids run 0 .. len - 1)."""
        return int(self._manifest["count"])

    @property
    def live(self) -> int:
        """The number of items not deleted."""
        return len(self) - len(self._deleted)

    def deleted_ids(self) -> np.ndarray:
        """The deleted ids, sorted (int64)."""
        return self._deleted.copy()

    def live_ids(self) -> np.ndarray:
        """The ids not deleted, in order (int64)."""
        return np.setdiff1d(np.arange(len(self), dtype=np.int64), self._deleted, assume_unique=True)


    @property
    def manifest(self) -> dict[str, Any]:
        """A copy of the manifest of this snapshot."""
        return copy.deepcopy(self._manifest)

    @property
    def segment_count(self) -> int:
        return len(self._manifest["segments"])

    def info(self) -> dict[str, Any]:
        """What `dnh db info` shows: counts, bits, the model, dates, files and their size."""
        self._check_open()
        files = [p for p in self.path.iterdir() if p.is_file() and p.name != ".lock"]
        model = self._manifest.get("model_info") or {}
        return {"db": str(self.path), "format_version": self._manifest["format_version"],
                "count": self.live, "ids": len(self), "deleted": len(self._deleted), "bits": self.bits,
                "model": {"fingerprint": self.model_fingerprint, "arch": model.get("arch"),
                          "objective": model.get("objective"), "classes": model.get("class_names"),
                          "source": model.get("checkpoint") or model.get("model"),
                          "stored": str(self.model_path) if self.model_path else None},
                "created": self._manifest.get("created"), "updated": self._manifest.get("updated"),
                "rerank": self._manifest.get("rerank"),
                "segments": self.segment_count, "files": len(files),
                "bytes": sum(p.stat().st_size for p in files)}

    def ids_for(self, keys: Sequence[str] = (), sources: Sequence[str] = ()) -> np.ndarray:
        """The live ids stored under `keys` (by the key index) and from `sources` (the "source"
        or "file" of their metadata, so a scan of the metadata); InputError names the first key
        or source that matches nothing."""
        found = self.find(list(keys)) if keys else np.zeros(0, np.int64)
        if (found < 0).any():
            raise InputError(f"no item has the key {keys[int(np.argmax(found < 0))]!r}",
                             hint="`dnh search --json` and the database's metadata show each item's key")
        # a source matches the metadata's "source" as stored, or its "file" (absolute path)
        variants = {v: str(given) for given in sources for v in (str(given), str(Path(given).absolute()))}
        matched: set[str] = set()
        by_source = []
        if variants:
            for item in self.live_ids().tolist():
                record = self.metadata([item])[0]
                hits = {variants[v] for v in (str(record.get("source")), str(record.get("file")))
                        if v in variants}
                if hits:
                    by_source.append(item)
                    matched |= hits
        missing = [str(given) for given in sources if str(given) not in matched]
        if missing:
            raise InputError(f"no item comes from {missing[0]!r}",
                             hint="give the source as stored (see `dnh search --json`), or its path")
        return np.union1d(found, np.array(by_source, np.int64)).astype(np.int64)

    def codes(self) -> np.ndarray:
        """Every id's code in id order, (len, bits/8) uint8, copied into memory (10M 48-bit
        codes: 60 MB); deleted ids included (index it with `live_ids()` to leave them out)."""
        self._check_open()
        if not self._segments:
            return np.zeros((0, self.bits // 8), np.uint8)
        return np.concatenate([s.codes for s in self._segments])

    def verify(self) -> None:
        """Check every segment file's crc32 and structure, and the stored model's sha256;
        DataError names the bad file."""
        self._check_open()
        for segment in self._segments:
            segment.verify()
        entry = self._manifest.get("model_file")
        if entry:
            path = self.path / entry["name"]
            try:
                digest = hashlib.sha256(path.read_bytes()).hexdigest()
            except OSError as exc:
                raise DataError(f"cannot read the stored model {path}: {exc.strerror}") from None
            if digest != entry["sha256"]:
                raise DataError(f"the stored model {path} fails its checksum (sha256): it is corrupt "
                                "or was changed", hint="rebuild the database, or search with --model")

    @property
    def model_path(self) -> Path | None:
        """The exported encoder stored in the database, or None (databases built before it)."""
        entry = self._manifest.get("model_file")
        return self.path / entry["name"] if entry else None

    def check_model(self, bits: int, fingerprint: str | None) -> None:
        """Refuse (ModelError) a model whose bit length or fingerprint differs from the database's."""
        refuse_other_model(self.path, self.bits, self.model_fingerprint, bits, fingerprint)

    # ---- reading -------------------------------------------------------------------------
    def search(self, packed_queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The k nearest codes by Hamming distance: (distances int32, ids int64), both (Q, min(k, N)),
        ascending distance, ties by id."""
        queries = self._check_codes(packed_queries, "query codes")
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise InputError(f"k must be a positive integer, got {k!r}")
        if not len(self._deleted):
            return search_segments(self._searched(), queries, int(k))
        # ask for a few more than k; if deleted items took their place for some query, ask
        # again for k + len(deleted), which always holds k live ones
        kept = min(int(k), self.live)
        for extra in (min(len(self._deleted), max(int(k), 16)), len(self._deleted)):
            dist, ids = search_segments(self._searched(), queries, int(k) + extra)
            gone = is_deleted(self._deleted, ids)
            if (np.sum(~gone, axis=1) >= kept).all():
                break
        order = np.argsort(gone, axis=1, kind="stable")[:, :kept]
        return np.take_along_axis(dist, order, 1), np.take_along_axis(ids, order, 1)

    def range_search(self, packed_queries: np.ndarray, radius: int
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """All codes within Hamming `radius`: FAISS-style (lims int64 (Q+1,), distances int32, ids
        int64); query q's results are [lims[q]:lims[q+1]], sorted by (distance, id)."""
        queries = self._check_codes(packed_queries, "query codes")
        if isinstance(radius, bool) or not isinstance(radius, (int, np.integer)) or radius < 0:
            raise InputError(f"radius must be a non-negative integer, got {radius!r}")
        if self._chunks is None and len(self) >= INDEX_MIN_CODES and (
                self._index_first_radius or len(queries) >= INDEX_AFTER_QUERIES):
            self.build_chunk_index()  # many queries: the index pays for itself
        found = self._chunks.range(queries, int(radius)) if self._chunks is not None else None
        lims, dist, ids = found or range_search_segments(self._searched(), queries, int(radius))
        if not len(self._deleted):
            return lims, dist, ids
        keep = ~is_deleted(self._deleted, ids)
        row = np.repeat(np.arange(len(queries)), np.diff(lims))[keep]
        lims = np.zeros(len(queries) + 1, np.int64)
        np.cumsum(np.bincount(row, minlength=len(queries)), out=lims[1:])
        return lims, dist[keep], ids[keep]

    def candidates(self, packed_queries: np.ndarray, m: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Stage 1 of `search_two_stage`: every live item at a distance no larger than each query's
        m-th nearest live one, FAISS-style (lims, distances int32, ids int64), sorted by (d, id).
        One scan per segment (`topk_ties`), asking each for m more items than it has deleted."""
        from dnhcli.index.search import topk_ties

        queries = self._check_codes(packed_queries, "query codes")
        nq = len(queries)
        units = [unit for unit in self._searched() if unit.count]
        if len(units) == 1 and not len(self._deleted) and nq:  # a server's consolidated database
            lims, dist, local = topk_ties(queries, units[0].codes, int(m))
            return lims, dist, local + units[0].start
        rows, dists, ids = [np.zeros(0, np.int64)], [np.zeros(0, np.int32)], [np.zeros(0, np.int64)]
        for unit in units if nq else []:
            gone = int(np.sum((self._deleted >= unit.start) & (self._deleted < unit.start + unit.count)))
            lims, dist, local = topk_ties(queries, unit.codes, int(m) + gone)
            found = local + unit.start
            live = ~is_deleted(self._deleted, found)
            rows.append(np.repeat(np.arange(nq), np.diff(lims))[live])
            dists.append(np.asarray(dist, np.int32)[live])
            ids.append(found[live])
        row, dist, idx = np.concatenate(rows), np.concatenate(dists), np.concatenate(ids)
        order = np.lexsort((idx, dist, row))
        row, dist, idx = row[order], dist[order], idx[order]
        counts = np.bincount(row, minlength=nq)
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
        cut = np.full(nq, -1, np.int64)  # each query's m-th distance (all of them when fewer)
        has = counts > 0
        cut[has] = dist[starts[has] + np.minimum(counts[has], int(m)) - 1]
        keep = dist <= cut[row]
        lims = np.zeros(nq + 1, np.int64)
        np.cumsum(np.bincount(row[keep], minlength=nq), out=lims[1:])
        return lims, dist[keep], idx[keep]

    def metadata(self, ids: Sequence[int] | np.ndarray) -> list[dict[str, Any]]:
        """The metadata dicts of `ids` (1-D), each with its "id"; reads only those records."""
        self._check_open()
        wanted = checked_ids(ids, len(self))
        gone = wanted[is_deleted(self._deleted, wanted)]
        if gone.size:
            raise InputError(f"item {gone[0]} was deleted from the hash database {self.path}")
        where = np.searchsorted(self._starts, wanted, side="right") - 1
        out = []
        for item, s in zip(wanted.tolist(), where.tolist()):
            segment = self._segments[s]
            out.append({"id": item, **segment.record(item - segment.start)})
        return out

    def vectors(self, ids: Sequence[int] | np.ndarray) -> np.ndarray:
        """The re-rank vectors of `ids` (1-D), (len(ids), bits) int8, in the order given."""
        self._check_open()
        wanted = checked_ids(ids, len(self))
        if not self.has_vectors:
            raise InputError(f"the hash database {self.path} stores no re-rank vectors", hint=NO_VECTORS_HINT)
        gone = wanted[is_deleted(self._deleted, wanted)]
        if gone.size:
            raise InputError(f"item {gone[0]} was deleted from the hash database {self.path}")
        only = self._segments[0].vectors if len(self._segments) == 1 else None
        if only is not None:
            return np.asarray(only[wanted - self._segments[0].start], np.int8)
        out = np.empty((len(wanted), self.bits), np.int8)
        where = np.searchsorted(self._starts, wanted, side="right") - 1
        for s in np.unique(where).tolist():
            rows = np.flatnonzero(where == s)
            segment = self._segments[s]
            out[rows] = segment.vectors[wanted[rows] - segment.start]
        return out

    def find(self, keys: Sequence[str]) -> np.ndarray:
        """The id stored under each key, or -1 (int64, one per key): index lookups, no scan."""
        self._check_open()
        if isinstance(keys, str):
            raise InputError("keys must be a list of strings, got one string")
        out = np.full(len(keys), -1, np.int64)
        for i, key in enumerate(keys):
            if not isinstance(key, str):
                raise InputError(f"keys must be strings, got {type(key).__name__}")
            for segment in self._segments:
                local = segment.find(key) if len(segment.keys) else None
                if local is not None:
                    out[i] = segment.start + local
                    break
        out[is_deleted(self._deleted, out)] = -1
        return out

    def _check_open(self) -> None:
        if self._closed:
            raise InputError(f"hash database {self.path} is closed", hint="open it again")

    def _check_codes(self, array: Any, what: str) -> np.ndarray:
        self._check_open()
        return check_packed(array, self.bits, what)
