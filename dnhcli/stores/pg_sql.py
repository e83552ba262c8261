"""The SQL of the PostgreSQL store (`dnhcli.stores.postgres`): its tables, and exact Hamming
search: top k by scan, and radius search by multi-index hashing (Norouzi et al.).

A code is stored as big-endian 64-bit words `w0`, `w1`, so `bit_count((w0 # q0)::bit(64))`
summed over the words is the Hamming distance, and as its m 16-bit chunks `c0 .. c{m-1}`, each
with a B-tree index. A code within distance r of the query is within floor(r/m) bits of it on
at least one chunk (pigeonhole), so the candidates of a radius search are the rows whose chunk
i is one of the values within floor(r/m) bits of the query's chunk i: index lookups, then the
exact check. Top k first asks the radii those lookups cover (m - 1 with exact chunk matches,
2m - 1 with one flipped bit) and scans (`ORDER BY distance, id LIMIT k`) only when they do
not hold k items. Every answer is sorted by (distance, id), as the local store's. The
candidates of a two-stage search (`ties`) are every row at a distance no larger than the
m-th nearest one's: the rows of the first index radius that holds m of them, else a scan for
the m-th distance and a radius search up to it.

A database that stores re-rank vectors has the column `v bytea NOT NULL`, exactly `bits`
bytes: the int8 vector's two's-complement bytes (`dnhcli.index.rerank`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from dnhcli.errors import DataError, InputError
from dnhcli.index.chunks import ball, chunk_count, chunks_of

MAX_BALL = 2  # chunk lookups within this many bits (137 values of 16 bits); beyond, a scan


def words_of(codes: np.ndarray, bits: int) -> np.ndarray:
    """Packed codes -> (N, ceil(bits/64)) signed big-endian 64-bit words."""
    width = -(-bits // 64) * 8
    padded = np.zeros((len(codes), width), np.uint8)
    padded[:, : codes.shape[1]] = codes
    return padded.view(">i8").astype(np.int64).reshape(len(codes), -1)


def code_columns(bits: int) -> str:
    """The columns of a code: its 64-bit words, then its 16-bit chunks."""
    return ", ".join([*(f"w{i} bigint NOT NULL" for i in range(-(-bits // 64))),
                      *(f"c{i} integer NOT NULL" for i in range(chunk_count(bits)))])


def vector_column(bits: int) -> str:
    """The re-rank vector column: the int8 vector's bytes, exactly `bits` of them."""
    return f"v bytea NOT NULL CHECK (octet_length(v) = {bits})"


def create_tables(conn: Any, t: str, bits: int, facts: list[Any], onnx: bytes | None,
                  shards: list[str], rerank: dict[str, Any] | None = None) -> None:
    """The codes table `t` (ids, words, indexed chunks, with `rerank` the vector column, unique
    key, JSONB metadata; on the shards when there are any), `t_facts` (one row: format,
    version, bits, model, next id, deleted count, change version, dates, `rerank`) and
    `t_model` (the stored encoder), in the caller's transaction."""
    columns = code_columns(bits) + (f", {vector_column(bits)}" if rerank else "")
    if shards:
        from dnhcli.stores.shards import create_sharded

        create_sharded(conn, t, columns, chunk_count(bits), shards)
    else:
        conn.execute(f"CREATE TABLE {t} (id bigint PRIMARY KEY, {columns}, key text UNIQUE, "
                     "meta jsonb NOT NULL)")
        for i in range(chunk_count(bits)):
            conn.execute(f"CREATE INDEX {t}_c{i} ON {t} (c{i})")
    conn.execute(f"CREATE TABLE {t}_facts (one boolean PRIMARY KEY DEFAULT true CHECK (one), format text, "
                 "format_version integer, bits integer, model_fingerprint text, model_info jsonb, "
                 "next_id bigint, deleted bigint, version bigint, created timestamptz, updated timestamptz, "
                 "rerank jsonb)")
    conn.execute(f"INSERT INTO {t}_facts VALUES (true, %s, %s, %s, %s, %s, 0, 0, 0, now(), now(), %s)",
                 [*facts, None if rerank is None else json.dumps(rerank)])
    conn.execute(f"CREATE TABLE {t}_model (one boolean PRIMARY KEY DEFAULT true CHECK (one), name text, "
                 "sha256 text, onnx bytea)")
    if onnx is not None:
        import hashlib

        conn.execute(f"INSERT INTO {t}_model VALUES (true, 'encoder.onnx', %s, %s)",
                     (hashlib.sha256(onnx).hexdigest(), onnx))


FACT_KEYS = ("format", "format_version", "bits", "model_fingerprint", "model_info", "count", "version",
             "created", "updated", "live", "rerank")


def read_facts(conn: Any, t: str) -> dict[str, Any] | None:
    """The facts row as a dict (FACT_KEYS; "rerank" None in tables made before the column), or None."""
    row = conn.execute("SELECT format, format_version, bits, model_fingerprint, model_info, next_id, "
                       "version, created, updated, next_id - deleted, to_jsonb(f) -> 'rerank' "
                       f"FROM {t}_facts AS f").fetchone()
    return None if row is None else dict(zip(FACT_KEYS, row))


def copy_rows(conn: Any, t: str, bits: int, start: int, codes: np.ndarray, keys: Sequence[str | None],
              records: Sequence[bytes], vectors: np.ndarray | None) -> None:
    """COPY items (ids from `start`) into `t`, in the caller's transaction."""
    words, chunks = words_of(codes, bits), chunks_of(codes, bits)
    names = ", ".join(["id", *(f"w{i}" for i in range(words.shape[1])),
                       *(f"c{i}" for i in range(chunks.shape[1])), "key", "meta",
                       *(["v"] if vectors is not None else [])])
    with conn.cursor().copy(f"COPY {t} ({names}) FROM STDIN") as copy:
        for i in range(len(codes)):
            extra = (vectors[i].tobytes(),) if vectors is not None else ()
            copy.write_row((start + i, *words[i].tolist(), *chunks[i].tolist(), keys[i], records[i].decode(),
                            *extra))


def read_vectors(conn: Any, t: str, bits: int, ids: np.ndarray) -> tuple[np.ndarray, list[int]]:
    """The vectors of `ids` ((len, bits) int8, in their order) and the ids not found (deleted)."""
    rows = dict(conn.execute(f"SELECT id, v FROM {t} WHERE id = ANY(%s)",
                             (np.unique(ids).tolist(),)).fetchall())
    missing = [i for i in ids.tolist() if i not in rows]
    out = np.zeros((len(ids), bits), np.int8)
    if not missing and len(ids):
        out[:] = np.frombuffer(b"".join(bytes(rows[i]) for i in ids.tolist()), np.int8).reshape(-1, bits)
    return out, missing


def read_codes(conn: Any, t: str, bits: int, count: int) -> np.ndarray:
    """Every id's code in id order (ids without a row: zeros), (count, bits/8) uint8."""
    width = bits // 8
    out = np.zeros((count, width), np.uint8)
    columns = ", ".join(f"w{i}" for i in range(-(-bits // 64)))
    with conn.cursor() as cur:
        cur.execute(f"SELECT id, {columns} FROM {t}")
        while rows := cur.fetchmany(100_000):
            table = np.array(rows, np.int64)
            out[table[:, 0]] = table[:, 1:].astype(">i8").view(np.uint8).reshape(len(table), -1)[:, :width]
    return out


def delete_rows(conn: Any, t: str, wanted: np.ndarray, where: str) -> None:
    """Delete the rows of the sorted unique ids `wanted` and count them in the facts, in the
    caller's transaction; InputError for an id never given or deleted already."""
    conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (t,))
    count = int(conn.execute(f"SELECT next_id FROM {t}_facts FOR UPDATE").fetchone()[0])
    bad = wanted[(wanted < 0) | (wanted >= count)]
    if bad.size:
        raise InputError(f"id {bad[0]} is not in the hash database {where} ({count} ids)")
    gone = conn.execute(f"DELETE FROM {t} WHERE id = ANY(%s) RETURNING id", (wanted.tolist(),)).fetchall()
    if len(gone) != len(wanted):
        missing = sorted(set(wanted.tolist()) - {r[0] for r in gone})[0]
        raise InputError(f"item {missing} was deleted already")
    if len(wanted):
        conn.execute(f"UPDATE {t}_facts SET deleted = deleted + %s, version = version + 1, updated = now()",
                     (len(wanted),))


def vector_mismatch_sql(t: str, bits: int) -> str:
    """The first id whose re-rank vector is missing or not `bits` bytes long (a check of `verify`)."""
    return f"SELECT min(id) FROM {t} WHERE v IS NULL OR octet_length(v) <> {bits}"


_MODELS: list[Path] = []


def model_file(conn: Any, t: str, sha256: str, where: str) -> Path:
    """The stored encoder as a file in a private temporary folder (removed when the process
    ends), written once per process and model; DataError if its bytes fail their sha256."""
    if not _MODELS:
        import atexit
        import shutil
        import tempfile

        _MODELS.append(Path(tempfile.mkdtemp(prefix="dnh-pg-models-")))
        atexit.register(shutil.rmtree, _MODELS[0], True)
    path = _MODELS[0] / f"{sha256}.onnx"
    if not path.exists():
        import hashlib

        onnx = bytes(conn.execute(f"SELECT onnx FROM {t}_model").fetchone()[0])
        if hashlib.sha256(onnx).hexdigest() != sha256:
            raise DataError(f"the model stored in {where} fails its checksum (sha256)",
                            hint="search with --model")
        part = path.with_suffix(".part")
        part.write_bytes(onnx)
        part.replace(path)
    return path


def chunk_mismatch_sql(t: str, bits: int) -> str:
    """The first id whose chunk columns disagree with its words (a check of `verify`)."""
    terms = [f"c{i} <> ((w{(i * 16) // 64} >> {48 - (i * 16) % 64}) & 65535)"
             for i in range(chunk_count(bits))]
    return f"SELECT min(id) FROM {t} WHERE {' OR '.join(terms)}"


def _distance(query: np.ndarray, bits: int) -> tuple[str, list[int]]:
    words = words_of(query, bits)[0]
    return " + ".join(f"bit_count((w{i} # %s)::bit(64))" for i in range(len(words))), [int(w) for w in words]


def _arrays(rows: list[tuple[Any, ...]]) -> tuple[np.ndarray, np.ndarray]:
    return np.array([r[0] for r in rows], np.int32), np.array([r[1] for r in rows], np.int64)


def scan(conn: Any, parts: list[str], bits: int, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k nearest rows to one query (1, bits/8) by a scan of each of `parts` (the table, or
    its shards' partitions, each with its own ORDER BY and LIMIT), merged."""
    expr, params = _distance(query, bits)
    if len(parts) == 1:
        sql = f"SELECT {expr} AS d, id FROM {parts[0]} ORDER BY d, id LIMIT %s"
        return _arrays(conn.execute(sql, (*params, k)).fetchall())
    union = " UNION ALL ".join(f"(SELECT {expr} AS d, id FROM {part} ORDER BY d, id LIMIT %s)"
                               for part in parts)
    sql = f"SELECT d, id FROM ({union}) AS shards ORDER BY d, id LIMIT %s"
    return _arrays(conn.execute(sql, (*[v for _ in parts for v in (*params, k)], k)).fetchall())


def within(conn: Any, table: str, bits: int, query: np.ndarray, radius: int, full_scan: bool = False
           ) -> tuple[np.ndarray, np.ndarray]:
    """Every row within `radius` of one query, sorted by (distance, id): by chunk lookups when
    they need chunk balls of at most MAX_BALL bits (and `full_scan` is not asked), else by a scan."""
    expr, params = _distance(query, bits)
    share = radius // chunk_count(bits)
    if share > MAX_BALL or full_scan:
        sql = f"SELECT d, id FROM (SELECT {expr} AS d, id FROM {table}) AS hits WHERE d <= %s ORDER BY d, id"
        return _arrays(conn.execute(sql, (*params, radius)).fetchall())
    chunks = chunks_of(query, bits)[0].tolist()
    where = " OR ".join(f"c{i} = ANY(%s)" for i in range(len(chunks)))
    sql = (f"SELECT d, id FROM (SELECT {expr} AS d, id FROM {table} WHERE {where}) AS hits "
           "WHERE d <= %s ORDER BY d, id")
    return _arrays(conn.execute(sql, (*params, *[ball(int(c), share) for c in chunks], radius)).fetchall())


def topk(conn: Any, table: str, parts: list[str], bits: int, queries: np.ndarray, k: int
         ) -> tuple[np.ndarray, np.ndarray]:
    """(distances int32, ids int64), (Q, k): k must not exceed the live rows."""
    m = chunk_count(bits)
    dist, ids = np.zeros((len(queries), k), np.int32), np.zeros((len(queries), k), np.int64)
    for q in range(len(queries)):
        found = None
        for radius in [m * (s + 1) - 1 for s in range(MAX_BALL)]:  # while index lookups hold k items
            d, i = within(conn, table, bits, queries[q : q + 1], radius)
            if len(d) >= k:
                found = (d[:k], i[:k])
                break
        dist[q], ids[q] = found if found is not None else scan(conn, parts, bits, queries[q : q + 1], k)
    return dist, ids


def range_all(conn: Any, table: str, bits: int, queries: np.ndarray, radius: int
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """FAISS-style (lims, distances, ids) of every row within `radius` of each query."""
    return _faiss([within(conn, table, bits, queries[q : q + 1], radius) for q in range(len(queries))],
                  len(queries))


def _faiss(parts: list[tuple[np.ndarray, np.ndarray]], nq: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    lims = np.zeros(nq + 1, np.int64)
    np.cumsum([len(d) for d, _ in parts], out=lims[1:])
    dist = np.concatenate([d for d, _ in parts]) if parts else np.zeros(0, np.int32)
    ids = np.concatenate([i for _, i in parts]) if parts else np.zeros(0, np.int64)
    return lims, dist.astype(np.int32), ids.astype(np.int64)


def ties(conn: Any, table: str, parts: list[str], bits: int, query: np.ndarray, m: int
         ) -> tuple[np.ndarray, np.ndarray]:
    """Every row at a distance no larger than that of the m-th nearest to one query (the whole
    tie at the cut), sorted by (distance, id); m must not exceed the live rows."""
    for radius in [chunk_count(bits) * (s + 1) - 1 for s in range(MAX_BALL)]:
        d, i = within(conn, table, bits, query, radius)
        if len(d) >= m:  # every row up to the m-th distance is within this radius
            keep = d <= d[m - 1]
            return d[keep], i[keep]
    d, i = scan(conn, parts, bits, query, m)
    return within(conn, table, bits, query, int(d[-1])) if len(d) else (d, i)


def ties_all(conn: Any, table: str, parts: list[str], bits: int, queries: np.ndarray, m: int
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """FAISS-style (lims, distances, ids) of `ties` for each query (m at most the live rows; 0: none)."""
    found = [ties(conn, table, parts, bits, queries[q : q + 1], m) if m else
             (np.zeros(0, np.int32), np.zeros(0, np.int64)) for q in range(len(queries))]
    return _faiss(found, len(queries))
