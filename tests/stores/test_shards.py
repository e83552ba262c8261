"""A database sharded over three PostgreSQL servers answers as one server and the local store."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dnhcli.errors import InputError
from dnhcli.stores.hashdb import HashDB


def test_sharded_search_equals_the_local_store(tmp_path: Path, sharded_url: str) -> None:
    from dnhcli.stores.postgres import PostgresStore

    rng = np.random.default_rng(1)
    codes = rng.integers(0, 4, (2400, 6), dtype=np.uint8)  # few values: many ties across shards
    meta = [{"source": f"s{i}", "key": f"k{i}"} for i in range(len(codes))]
    queries = rng.integers(0, 4, (15, 6), dtype=np.uint8)
    with (
        HashDB.create(tmp_path / "db", 48, "fp") as local,
        PostgresStore.create(sharded_url, 48, "fp") as remote,
    ):
        for store in (local, remote):
            store.add(codes[:1000], meta[:1000])
            store.add(codes[1000:], meta[1000:])
            store.delete([10, 2000])
        assert len(remote.shards) == 3 and remote.info()["shards"] == remote.shards
        for k in (1, 10, 300):
            for a, b in zip(local.search(queries, k), remote.search(queries, k)):
                np.testing.assert_array_equal(a, b)
        for radius in (0, 2, 3, 6):
            for a, b in zip(local.range_search(queries, radius), remote.range_search(queries, radius)):
                np.testing.assert_array_equal(a, b)
        assert remote.find(["k5", "k10"]).tolist() == [5, -1]
        assert remote.metadata([7])[0]["source"] == "s7"
        np.testing.assert_array_equal(local.live_ids(), remote.live_ids())


def test_each_shard_holds_a_part_and_runs_its_own_limit(sharded_url: str) -> None:
    import psycopg

    from dnhcli.stores.pg_sql import _distance
    from dnhcli.stores.postgres import PostgresStore

    with PostgresStore.create(sharded_url, 48, "fp") as store:
        store.add(np.random.default_rng(2).integers(0, 256, (900, 6), dtype=np.uint8))
        counts = []
        for n, url in enumerate(store.shards):
            with psycopg.connect(url) as conn:
                counts.append(conn.execute(f"SELECT count(*) FROM dnh_codes_p{n}").fetchone()[0])
        assert sum(counts) == 900 and min(counts) > 200  # hash partitioning spreads them
        expr, params = _distance(np.zeros((1, 6), np.uint8), 48)
        union = " UNION ALL ".join(
            f"(SELECT {expr} AS d, id FROM {p} ORDER BY d, id LIMIT 10)" for p in store.parts
        )
        with psycopg.connect(sharded_url) as conn:
            plan = "\n".join(
                r[0] for r in conn.execute(f"EXPLAIN VERBOSE SELECT * FROM ({union}) u", params * 3)
            )
        remote = [line for line in plan.splitlines() if "Remote SQL" in line]
        assert len(remote) == 3 and all("ORDER BY" in line and "LIMIT 10" in line for line in remote)


def test_shards_are_set_before_the_first_append(sharded_url: str, postgres) -> None:
    from dnhcli.stores.postgres import PostgresStore
    from dnhcli.stores.shards import add_shard

    PostgresStore.create(sharded_url, 16).close()
    with pytest.raises(InputError, match="exists already"):
        add_shard(sharded_url, postgres.database())
