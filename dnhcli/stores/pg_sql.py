"""The SQL of the PostgreSQL store (`dnhcli.stores.postgres`): its tables, and exact Hamming
search: top k by scan, and radius search by multi-index hashing (Norouzi et al.).

A code is stored as big-endian 64-bit words `w0`, `w1`, so `bit_count((w0 # q0)::bit(64))`
summed over the words is the Hamming distance, and as its m 16-bit chunks `c0 .. c{m-1}`, each
with a B-tree index. A code within distance r of the query is within floor(r/m) bits of it on
at least one chunk (pigeonhole), so the candidates of a radius search are the rows whose chunk
i is one of the values within floor(r/m) bits of the query's chunk i: index lookups, then the
exact check. Top k first asks the radii those lookups cover (m - 1 with exact chunk matches,
2m - 1 with one flipped bit) and scans (`ORDER BY distance, id LIMIT k`) only when they do
not hold k items. Every answer is sorted by (distance, id), as the local store's.
"""

from __future__ import annotations

from typing import Any

import numpy as np

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


def create_tables(conn: Any, t: str, bits: int, facts: list[Any], onnx: bytes | None,
                  shards: list[str]) -> None:
    """The codes table `t` (ids, words, indexed chunks, unique key, JSONB metadata; on the shards
    when there are any), `t_facts` (one row: format, version, bits, model, next id, deleted
    count, change version, dates) and `t_model` (the stored encoder), in the caller's
    transaction."""
    if shards:
        from dnhcli.stores.shards import create_sharded

        create_sharded(conn, t, code_columns(bits), chunk_count(bits), shards)
    else:
        conn.execute(f"CREATE TABLE {t} (id bigint PRIMARY KEY, {code_columns(bits)}, key text UNIQUE, "
                     "meta jsonb NOT NULL)")
        for i in range(chunk_count(bits)):
            conn.execute(f"CREATE INDEX {t}_c{i} ON {t} (c{i})")
    conn.execute(f"CREATE TABLE {t}_facts (one boolean PRIMARY KEY DEFAULT true CHECK (one), format text, "
                 "format_version integer, bits integer, model_fingerprint text, model_info jsonb, "
                 "next_id bigint, deleted bigint, version bigint, created timestamptz, updated timestamptz)")
    conn.execute(f"INSERT INTO {t}_facts VALUES (true, %s, %s, %s, %s, %s, 0, 0, 0, now(), now())", facts)
    conn.execute(f"CREATE TABLE {t}_model (one boolean PRIMARY KEY DEFAULT true CHECK (one), name text, "
                 "sha256 text, onnx bytea)")
    if onnx is not None:
        import hashlib

        conn.execute(f"INSERT INTO {t}_model VALUES (true, 'encoder.onnx', %s, %s)",
                     (hashlib.sha256(onnx).hexdigest(), onnx))


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
    parts = [within(conn, table, bits, queries[q : q + 1], radius) for q in range(len(queries))]
    lims = np.zeros(len(queries) + 1, np.int64)
    np.cumsum([len(d) for d, _ in parts], out=lims[1:])
    dist = np.concatenate([d for d, _ in parts]) if parts else np.zeros(0, np.int32)
    ids = np.concatenate([i for _, i in parts]) if parts else np.zeros(0, np.int64)
    return lims, dist.astype(np.int32), ids.astype(np.int64)
