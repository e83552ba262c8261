"""A hash database in PostgreSQL (psycopg 3): the calls of `HashDB`, over three tables.

    postgresql://user@host:port/dbname[?table=NAME]          (table: dnh_codes by default)

- `NAME`: one row per live item: `id` (given in insertion order, never reused), the code as
  `w0` (and `w1` beyond 64 bits: big-endian 64-bit words, so XOR and `bit_count` give the
  Hamming distance), the 16-bit chunks `c0 .. c{m-1}` of multi-index hashing (each with a
  B-tree index), `key` (unique), `meta` (JSONB) and, in a database that stores re-rank
  vectors, `v` (bytea, the int8 vector, `bits` bytes). A deletion removes the row: its code,
  key, metadata and vector are gone at commit (`compact` has nothing left to erase).
- `NAME_facts`: one row: format, bits, the model's fingerprint and facts, the next id, dates,
  `rerank` (`rerank_spec(bits)`, or NULL; absent in tables of format version 1).
- `NAME_model`: the exported encoder (ONNX bytes and sha256), so a search needs no --model.

An append is one transaction (COPY of every row, then the next id), under an advisory lock
per table, so a batch is stored whole or not at all and writers take turns. Search is exact:
top k by `ORDER BY distance, id`; radius search by multi-index hashing (Norouzi et al.): a
code within distance r of the query is within floor(r/m) bits of it on at least one of the m
chunks, so the candidates come from index lookups of the chunk values within that distance,
then are checked exactly. Top k first tries the radii that such lookups cover and falls back
to a scan when they do not hold k items. Two-stage search (`TwoStageSearch`) takes as
candidates every row up to the k x oversample-th distance (`pg_sql.ties`). Results equal the
local store's.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

import dnhcli.stores.pg_sql as pg_sql
from dnhcli.errors import DataError, InputError
from dnhcli.index.codes import validate_bits
from dnhcli.index.rerank import rerank_spec
from dnhcli.stores.locate import connect, redact, split_url
from dnhcli.stores.metadata import encode_metadata, item_keys
from dnhcli.stores.reader import StoreFacts, checked_ids, refuse_bad_appends, refuse_other_model
from dnhcli.stores.segment_search import check_packed
from dnhcli.stores.shards import parts_of, shards_of
from dnhcli.stores.two_stage import NO_VECTORS_HINT, TwoStageSearch

# 2 added the facts column `rerank` and, in databases that store re-rank vectors, the column `v`
FORMAT, FORMAT_VERSION = "dnh-hashdb-postgresql", 2
F = TypeVar("F", bound=Any)


def _guard(method: F) -> F:
    """Turn a PostgreSQL failure inside `method` (server gone, query refused) into one DataError
    line; a transaction that was open is rolled back by the server, so nothing is half stored."""

    @functools.wraps(method)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        import psycopg

        try:
            return method(*args, **kwargs)
        except psycopg.Error as exc:
            store = args[0] if args and isinstance(args[0], PostgresStore) else None
            where = store.path if store is not None else "PostgreSQL"
            reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
            raise DataError(f"PostgreSQL error on {where}: {reason}",
                            hint="nothing was changed by the failed call; check the server and retry"
                            ) from None

    return guarded  # type: ignore[return-value]


class PostgresStore(StoreFacts, TwoStageSearch):
    """A hash database in PostgreSQL; see the module docs. Use `create` or `open`."""

    def __init__(self, url: str, conn: Any, table: str, facts: dict[str, Any]) -> None:
        self.url, self.path, self._conn, self.table, self._manifest = url, redact(url), conn, table, facts

    # ---- opening ------------------------------------------------------------------------
    @classmethod
    @_guard
    def exists(cls, url: str) -> bool:
        conn = connect(url)
        _, table = split_url(url)
        with conn:
            return conn.execute("SELECT to_regclass(%s) IS NOT NULL", (f"{table}_facts",)).fetchone()[0]

    @classmethod
    @_guard
    def open(cls, url: str) -> PostgresStore:
        conn = connect(url)
        _, table = split_url(url)
        if not conn.execute("SELECT to_regclass(%s) IS NOT NULL", (f"{table}_facts",)).fetchone()[0]:
            conn.close()
            raise InputError(
                f"no hash database in {redact(url)} (table {table}_facts not found)",
                hint="create one with `dnh hash --db URL`, or name its table with ?table=NAME",
            )
        store = cls(url, conn, table, {})
        store._load_facts()
        conn.commit()
        return store

    @classmethod
    @_guard
    def create(cls, url: str, bits: int, model_fingerprint: str | None = None,
               model_info: dict[str, Any] | None = None, model_file: Path | None = None,
               vectors: bool = False) -> PostgresStore:
        """A new, empty database; with `vectors`, one that stores a re-rank vector per item."""
        bits = validate_bits(bits)
        conn = connect(url)
        _, t = split_url(url)
        onnx = Path(model_file).read_bytes() if model_file is not None else None
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (t,))
            if conn.execute("SELECT to_regclass(%s) IS NOT NULL", (f"{t}_facts",)).fetchone()[0]:
                conn.close()
                raise InputError(f"a hash database already exists in {redact(url)} (table {t})",
                                 hint="open it to add codes, or name another table with ?table=NAME")
            pg_sql.create_tables(conn, t, bits, [FORMAT, FORMAT_VERSION, bits, model_fingerprint,
                                                 json.dumps(model_info or {})], onnx, shards_of(conn, t),
                                 rerank_spec(bits) if vectors else None)
        store = cls(url, conn, t, {})
        store._load_facts()
        conn.commit()
        return store

    def _load_facts(self) -> None:
        facts = pg_sql.read_facts(self._conn, self.table)
        if facts is None or facts["format"] != FORMAT:
            raise DataError(f"{self.path}: table {self.table}_facts is not a dnh hash database")
        if facts["format_version"] > FORMAT_VERSION:
            raise DataError(f"{self.path} has format version {facts['format_version']}, newer than this "
                            f"dnh reads ({FORMAT_VERSION})", hint="upgrade dnh")
        self._manifest = facts
        self.shards = shards_of(self._conn, self.table)
        self.parts = parts_of(self.table, self.shards)
        facts["created"], facts["updated"] = str(facts["created"]), str(facts["updated"])

    @_guard
    def refresh(self) -> None:
        """Read the facts again (count, version, model), after other writers' commits."""
        self._conn.commit()
        self._load_facts()
        self._conn.commit()

    def close(self) -> None:
        if not self._conn.closed:
            self._conn.close()

    def __enter__(self) -> PostgresStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"PostgresStore({self.path!r}, bits={self.bits}, count={len(self)})"

    # ---- facts ----------------------------------------------------------------------------
    def __len__(self) -> int:
        return int(self._manifest["count"])

    @property
    def live(self) -> int:
        return int(self._manifest["live"])

    @property
    def manifest(self) -> dict[str, Any]:
        return dict(self._manifest)

    @classmethod
    def stamp_of(cls, url: str) -> tuple[Any, ...]:
        """What changes whenever a writer commits (a server polls it to reopen), on a
        connection of its own."""
        import psycopg

        _, table = split_url(url)
        try:
            with connect(url) as conn:
                row = conn.execute(f"SELECT version, next_id FROM {table}_facts").fetchone()
        except psycopg.Error:
            return (0, 0)
        return tuple(row) if row else (0, 0)

    @_guard
    def info(self) -> dict[str, Any]:
        model = self.model_info
        size = self._conn.execute("SELECT pg_total_relation_size(%s) + pg_total_relation_size(%s) + "
                                  "pg_total_relation_size(%s)",
                                  (self.table, f"{self.table}_facts", f"{self.table}_model")).fetchone()[0]
        self._conn.commit()
        return {"db": self.path, "format_version": self._manifest["format_version"], "count": self.live,
                "ids": len(self), "deleted": len(self) - self.live, "bits": self.bits,
                "model": {"fingerprint": self.model_fingerprint, "arch": model.get("arch"),
                          "objective": model.get("objective"), "classes": model.get("class_names"),
                          "source": model.get("checkpoint") or model.get("model"),
                          "stored": "encoder.onnx" if self._model_sha256() else None},
                "created": self._manifest["created"], "updated": self._manifest["updated"],
                "rerank": self._manifest.get("rerank"), "table": self.table,
                "shards": [redact(url) for url in self.shards], "bytes": int(size)}

    @_guard
    def _model_sha256(self) -> str | None:
        row = self._conn.execute(f"SELECT sha256 FROM {self.table}_model").fetchone()
        self._conn.commit()
        return row[0] if row else None

    @property
    @_guard
    def model_path(self) -> Path | None:
        """The stored encoder, written (once per process and model) to a private temporary folder
        that is removed when the process ends, for the backends to read; its bytes are fetched
        only when that file is not there yet."""
        sha256 = self._model_sha256()
        try:
            return pg_sql.model_file(self._conn, self.table, sha256, self.path) if sha256 else None
        finally:
            self._conn.commit()

    @_guard
    def verify(self) -> None:
        """Check the stored model's sha256, that every row's chunks match its code and, in a
        database that stores them, that every row has a re-rank vector of `bits` bytes."""
        _ = self.model_path
        bad = self._conn.execute(pg_sql.chunk_mismatch_sql(self.table, self.bits)).fetchone()[0]
        no_vector = (self._conn.execute(pg_sql.vector_mismatch_sql(self.table, self.bits)).fetchone()[0]
                     if self.has_vectors else None)
        self._conn.commit()
        if bad is not None:
            raise DataError(f"{self.path}: the chunk columns of item {bad} do not match its code")
        if no_vector is not None:
            raise DataError(f"{self.path}: item {no_vector} has no re-rank vector of {self.bits} bytes")

    def check_model(self, bits: int, fingerprint: str | None) -> None:
        refuse_other_model(self.path, self.bits, self.model_fingerprint, bits, fingerprint)

    def consolidate(self) -> None:
        """Nothing to do: the server holds the codes."""

    # ---- writing --------------------------------------------------------------------------
    @_guard
    def add(self, packed_codes: np.ndarray, metadata: Sequence[Mapping[str, Any]] | None = None,
            vectors: np.ndarray | None = None) -> np.ndarray:
        """Append codes, metadata and (in a database that stores them, and only there) re-rank
        vectors (N, bits) int8 in one transaction (COPY); returns their ids."""
        codes = check_packed(packed_codes, self.bits, "codes to add")
        records, given = encode_metadata(metadata, len(codes))
        keys = item_keys(metadata, len(codes))
        vectors = self._check_vectors(vectors, len(codes))
        self._conn.commit()  # the append is a transaction of its own
        t = self.table
        with self._conn.transaction():
            self._conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (t,))
            start = int(self._conn.execute(f"SELECT next_id FROM {t}_facts FOR UPDATE").fetchone()[0])
            stored = self.find([k for k in keys if k is not None], commit=False)
            refuse_bad_appends(given, start, keys, stored)
            pg_sql.copy_rows(self._conn, t, self.bits, start, codes, keys, records, vectors)
            self._conn.execute(f"UPDATE {t}_facts SET next_id = %s, version = version + 1, updated = now()",
                               (start + len(codes),))
        self._load_facts()
        self._conn.commit()
        return np.arange(start, start + len(codes), dtype=np.int64)

    @_guard
    def delete(self, ids: Sequence[int] | np.ndarray) -> np.ndarray:
        """Delete items by id in one transaction: their rows (code, key, metadata, vector) are gone."""
        wanted = np.unique(np.asarray(ids, dtype=np.int64).reshape(-1)) if len(ids) else np.zeros(0, np.int64)
        self._conn.commit()
        with self._conn.transaction():
            pg_sql.delete_rows(self._conn, self.table, wanted, self.path)
        self._load_facts()
        self._conn.commit()
        return wanted

    @_guard
    def compact(self) -> None:
        """Deleted rows are gone at commit; VACUUM lets PostgreSQL reuse their space (on a sharded
        database, each shard's autovacuum does)."""
        self._conn.commit()
        if self.shards:
            return
        self._conn.autocommit = True
        try:
            self._conn.execute(f"VACUUM {self.table}")
        finally:
            self._conn.autocommit = False

    # ---- reading --------------------------------------------------------------------------
    @_guard
    def search(self, packed_queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The k nearest codes: (distances int32, ids int64), (Q, min(k, live)), ties by id."""
        queries = check_packed(packed_queries, self.bits, "query codes")
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise InputError(f"k must be a positive integer, got {k!r}")
        found = pg_sql.topk(self._conn, self.table, self.parts, self.bits, queries, min(int(k), self.live))
        self._conn.commit()
        return found

    @_guard
    def range_search(self, packed_queries: np.ndarray, radius: int
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """All codes within `radius`: (lims, distances, ids), each query's sorted by (distance, id)."""
        queries = check_packed(packed_queries, self.bits, "query codes")
        if isinstance(radius, bool) or not isinstance(radius, (int, np.integer)) or radius < 0:
            raise InputError(f"radius must be a non-negative integer, got {radius!r}")
        found = pg_sql.range_all(self._conn, self.table, self.bits, queries, int(radius))
        self._conn.commit()
        return found

    @_guard
    def candidates(self, packed_queries: np.ndarray, m: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every live item at a distance no larger than each query's m-th nearest one's (the whole
        tie at the cut), FAISS-style (lims, distances int32, ids int64), sorted by (distance, id)."""
        queries = check_packed(packed_queries, self.bits, "query codes")
        m = min(int(m), self.live)
        found = pg_sql.ties_all(self._conn, self.table, self.parts, self.bits, queries, m)
        self._conn.commit()
        return found

    @_guard
    def vectors(self, ids: Sequence[int] | np.ndarray) -> np.ndarray:
        """The re-rank vectors of `ids` (1-D), (len(ids), bits) int8, in the order given."""
        wanted = checked_ids(ids, len(self))
        if not self.has_vectors:
            raise InputError(f"the hash database {self.path} stores no re-rank vectors", hint=NO_VECTORS_HINT)
        out, missing = pg_sql.read_vectors(self._conn, self.table, self.bits, wanted)
        self._conn.commit()
        if missing:
            raise InputError(f"item {missing[0]} was deleted from the hash database {self.path}")
        return out

    @_guard
    def metadata(self, ids: Sequence[int] | np.ndarray) -> list[dict[str, Any]]:
        wanted = checked_ids(ids, len(self))
        rows = dict(self._conn.execute(f"SELECT id, meta FROM {self.table} WHERE id = ANY(%s)",
                                       (wanted.tolist(),)).fetchall())
        self._conn.commit()
        missing = [i for i in wanted.tolist() if i not in rows]
        if missing:
            raise InputError(f"item {missing[0]} was deleted from the hash database {self.path}")
        return [{"id": i, **rows[i]} for i in wanted.tolist()]

    @_guard
    def find(self, keys: Sequence[str], commit: bool = True) -> np.ndarray:
        if isinstance(keys, str):
            raise InputError("keys must be a list of strings, got one string")
        for key in keys:
            if not isinstance(key, str):
                raise InputError(f"keys must be strings, got {type(key).__name__}")
        out = np.full(len(keys), -1, np.int64)
        if keys:
            found = dict(self._conn.execute(f"SELECT key, id FROM {self.table} WHERE key = ANY(%s)",
                                            (list(keys),)).fetchall())
            out[:] = [found.get(k, -1) for k in keys]
        if commit:
            self._conn.commit()
        return out

    @_guard
    def live_ids(self) -> np.ndarray:
        rows = self._conn.execute(f"SELECT id FROM {self.table} ORDER BY id").fetchall()
        self._conn.commit()
        return np.array([r[0] for r in rows], np.int64)

    def deleted_ids(self) -> np.ndarray:
        return np.setdiff1d(np.arange(len(self), dtype=np.int64), self.live_ids(), assume_unique=True)

    @_guard
    def codes(self) -> np.ndarray:
        """Every id's code in id order (deleted ids: zeros), (len, bits/8) uint8."""
        out = pg_sql.read_codes(self._conn, self.table, self.bits, len(self))
        self._conn.commit()
        return out

    @_guard
    def ids_for(self, keys: Sequence[str] = (), sources: Sequence[str] = ()) -> np.ndarray:
        found = self.find(list(keys)) if keys else np.zeros(0, np.int64)
        if (found < 0).any():
            raise InputError(f"no item has the key {keys[int(np.argmax(found < 0))]!r}",
                             hint="`dnh search --json` and the database's metadata show each item's key")
        variants = {v: str(given) for given in sources for v in (str(given), str(Path(given).absolute()))}
        rows = self._conn.execute(f"SELECT id, meta->>'source', meta->>'file' FROM {self.table} "
                                  "WHERE meta->>'source' = ANY(%s) OR meta->>'file' = ANY(%s)",
                                  (list(variants), list(variants))).fetchall() if variants else []
        self._conn.commit()
        matched = {variants[v] for r in rows for v in r[1:] if v in variants}
        missing = [str(given) for given in sources if str(given) not in matched]
        if missing:
            raise InputError(f"no item comes from {missing[0]!r}",
                             hint="give the source as stored (see `dnh search --json`), or its path")
        return np.union1d(found, np.array([r[0] for r in rows], np.int64)).astype(np.int64)
