"""One logical PostgreSQL hash database over several servers, distributed by PostgreSQL itself.

The database named by the URL (the coordinator) keeps the facts and the model, and the codes
table as a hash-partitioned table (`PARTITION BY HASH (id)`) whose partitions are foreign tables
(`postgres_fdw`) on the shard servers, where the rows (and their re-rank vectors, in a
database that stores them) and their chunk indexes live. Appends
(COPY into the parent) are routed by PostgreSQL; a search's WHERE clauses, and a top k's
`ORDER BY distance, id LIMIT k`, run on each shard (`EXPLAIN VERBOSE` shows the remote SQL),
and the coordinator merges. The queries are those of a single server on the parent table, so
they run unchanged on a Citus distributed table; only the top-k scan names the shards, so that
each one's LIMIT is pushed down.

Set-up, before the first `dnh hash`: `dnh db shard add COORDINATOR_URL SHARD_URL`, once per
shard. Shards are fixed once the database exists (no resharding).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote, urlsplit

from dnhcli.errors import InputError
from dnhcli.stores.locate import connect, redact, split_url


def shards_of(conn: Any, table: str) -> list[str]:
    """The shard URLs registered for `table`, in partition order (none: a single server)."""
    if not conn.execute("SELECT to_regclass(%s) IS NOT NULL", (f"{table}_shards",)).fetchone()[0]:
        return []
    return [row[0] for row in conn.execute(f"SELECT url FROM {table}_shards ORDER BY n").fetchall()]


def add_shard(coordinator: str, shard: str) -> dict[str, Any]:
    """Register `shard` (a PostgreSQL URL) as the next shard of the database at `coordinator`:
    the foreign server and user mapping of postgres_fdw, and the shard list."""
    _, table = split_url(coordinator)
    shard_conninfo, _ = split_url(shard)
    with connect(shard) as probe:  # reachable, and a PostgreSQL we can create tables in
        probe.execute("SELECT 1")
    parts = urlsplit(shard_conninfo)
    with connect(coordinator) as conn, conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (table,))
        if conn.execute("SELECT to_regclass(%s) IS NOT NULL", (f"{table}_facts",)).fetchone()[0]:
            raise InputError(f"the hash database at {redact(coordinator)} exists already; shards are set "
                             "before its first `dnh hash`",
                             hint="copy it into a new sharded table with `dnh db copy`")
        conn.execute("CREATE EXTENSION IF NOT EXISTS postgres_fdw")
        conn.execute(f"CREATE TABLE IF NOT EXISTS {table}_shards (n integer PRIMARY KEY, url text NOT NULL)")
        known = shards_of(conn, table)
        if shard in known:
            raise InputError(f"{redact(shard)} is already shard {known.index(shard)} of "
                             f"{redact(coordinator)}")
        n = len(known)
        server = f"{table}_s{n}"
        options = {"host": parts.hostname or "localhost", "port": str(parts.port or 5432),
                   "dbname": unquote(parts.path.lstrip("/")) or "postgres", "fetch_size": "1000",
                   "async_capable": "true"}  # the shards answer at once, not in turn
        conn.execute(f"CREATE SERVER {server} FOREIGN DATA WRAPPER postgres_fdw "
                     f"OPTIONS ({_options(options)})")
        mapping = {"user": unquote(parts.username or "postgres"),
                   **({"password": unquote(parts.password)} if parts.password else {})}
        conn.execute(f"CREATE USER MAPPING FOR CURRENT_USER SERVER {server} OPTIONS ({_options(mapping)})")
        conn.execute(f"INSERT INTO {table}_shards VALUES (%s, %s)", (n, shard))
    return {"db": redact(coordinator), "shard": n, "url": redact(shard), "shards": n + 1}


def create_sharded(conn: Any, table: str, columns: str, chunk_columns: int, shards: list[str]) -> None:
    """The codes table of a sharded database with `columns` (the code's, and the vector's when
    stored): its partitions on the shards, and on the coordinator (`conn`, in its transaction)
    the partitioned parent and foreign partitions."""
    conn.execute(f"CREATE TABLE {table} (id bigint NOT NULL, {columns}, key text, meta jsonb NOT NULL) "
                 "PARTITION BY HASH (id)")
    for n, url in enumerate(shards):
        part = f"{table}_p{n}"
        with connect(url) as remote, remote.transaction():
            remote.execute(f"DROP TABLE IF EXISTS {part}")  # left by a create that failed later
            remote.execute(f"CREATE TABLE {part} (id bigint PRIMARY KEY, {columns}, key text UNIQUE, "
                           "meta jsonb NOT NULL)")
            for i in range(chunk_columns):
                remote.execute(f"CREATE INDEX {part}_c{i} ON {part} (c{i})")
        conn.execute(f"CREATE FOREIGN TABLE {part} PARTITION OF {table} FOR VALUES WITH "
                     f"(MODULUS {len(shards)}, REMAINDER {n}) SERVER {table}_s{n} "
                     f"OPTIONS (table_name '{part}')")


def _options(values: dict[str, str]) -> str:
    """An OPTIONS list with its values quoted as SQL literals (DDL takes no parameters)."""
    from psycopg import sql

    return ", ".join(f"{key} " + sql.Literal(value).as_string(None) for key, value in values.items())


def parts_of(table: str, shards: list[str]) -> list[str]:
    """The partitions a top-k scan asks one by one (each with its own LIMIT), or the table."""
    return [f"{table}_p{n}" for n in range(len(shards))] if shards else [table]
