"""The PostgreSQL store answers as the local folder does: the same ids and distances in the
same tie order, keys, deletions, and whole batches only (a throwaway server per session)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from dnhcli.errors import DataError, InputError, ModelError
from dnhcli.stores.hashdb import HashDB
from dnhcli.stores.locate import location, split_url


def _pair(tmp_path: Path, url: str, bits: int, n: int, values: int, seed: int = 0):
    """The same codes (few distinct values: many ties) in a local database and in PostgreSQL,
    in two appends each."""
    from dnhcli.stores.postgres import PostgresStore

    rng = np.random.default_rng(seed)
    codes = rng.integers(0, values, (n, bits // 8), dtype=np.uint8)
    meta = [{"source": f"img{i}.png", "key": f"file:img{i}.png", "organ": "Lung"} for i in range(n)]
    local = HashDB.create(tmp_path / "db", bits, "fp")
    remote = PostgresStore.create(url, bits, "fp")
    for store in (local, remote):
        store.add(codes[: n // 2], meta[: n // 2])
        store.add(codes[n // 2 :], meta[n // 2 :])
    return local, remote, rng.integers(0, values, (25, bits // 8), dtype=np.uint8)


@pytest.mark.parametrize(("bits", "values"), [(48, 4), (16, 256), (128, 2), (24, 8)])
def test_search_equals_the_local_store(tmp_path: Path, pg_url: str, bits: int, values: int) -> None:
    local, remote, queries = _pair(tmp_path, pg_url, bits, 1500, values)
    with local, remote:
        for k in (1, 10, 200, 5000):
            for a, b in zip(local.search(queries, k), remote.search(queries, k)):
                np.testing.assert_array_equal(a, b)
        for radius in (0, 1, 2, 3, 5, 9):
            for a, b in zip(local.range_search(queries, radius), remote.range_search(queries, radius)):
                np.testing.assert_array_equal(a, b)
        gone = [3, 700, 1499]
        local.delete(gone)
        remote.delete(gone)
        for a, b in zip(local.search(queries, 50), remote.search(queries, 50)):
            np.testing.assert_array_equal(a, b)
        live = local.live_ids()
        np.testing.assert_array_equal(live, remote.live_ids())
        np.testing.assert_array_equal(local.codes()[live], remote.codes()[live])
        np.testing.assert_array_equal(local.deleted_ids(), remote.deleted_ids())
        assert (len(remote), remote.live) == (len(local), local.live) == (1500, 1497)
        remote.verify()


def test_keys_metadata_and_erasure(tmp_path: Path, pg_url: str) -> None:
    local, remote, _ = _pair(tmp_path, pg_url, 48, 40, 256)
    with local, remote:
        assert remote.find(["file:img7.png", "nope"]).tolist() == [7, -1]
        assert remote.metadata([7]) == local.metadata([7])
        with pytest.raises(InputError, match="already stored"):
            remote.add(np.zeros((1, 6), np.uint8), [{"key": "file:img7.png"}])
        assert remote.ids_for(sources=["img9.png"]).tolist() == [9]
        remote.delete([7])
        assert remote.find(["file:img7.png"]).tolist() == [-1]
        with pytest.raises(InputError, match="deleted"):
            remote.metadata([7])
        with pytest.raises(InputError, match="deleted already"):
            remote.delete([7])
        import psycopg

        conninfo, table = split_url(pg_url)
        with psycopg.connect(conninfo) as conn:  # erased at commit: no row holds it any more
            assert (
                conn.execute(f"SELECT count(*) FROM {table} WHERE meta::text LIKE '%img7.png%'").fetchone()[0]
                == 0
            )


def test_a_failed_append_stores_nothing(pg_url: str) -> None:
    from dnhcli.stores.postgres import PostgresStore

    with PostgresStore.create(pg_url, 16) as store:
        store.add(np.zeros((3, 2), np.uint8))
        with pytest.raises(DataError, match="PostgreSQL error"):  # JSONB refuses a NUL character
            store.add(np.ones((5, 2), np.uint8), [{"note": "ok"}] * 4 + [{"note": "bad\u0000"}])
        assert (len(store), store.live) == (3, 3)
        assert store.add(np.ones((1, 2), np.uint8)).tolist() == [3]


def test_model_mismatch_and_existing_tables(pg_url: str) -> None:
    from dnhcli.stores.postgres import PostgresStore

    PostgresStore.create(pg_url, 48, "fp").close()
    with PostgresStore.open(pg_url) as store:
        with pytest.raises(ModelError, match="32-bit"):
            store.check_model(32, "fp")
        with pytest.raises(ModelError, match="fingerprint"):
            store.check_model(48, "other")
    with pytest.raises(InputError, match="already exists"):
        PostgresStore.create(pg_url, 48)
    with pytest.raises(InputError, match="no hash database"):
        PostgresStore.open(pg_url + "?table=other")
    PostgresStore.create(pg_url + "?table=other", 16).close()  # a second table beside the first


def test_urls_are_never_folders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert location("postgresql://u@h:5432/db?table=x") == "postgresql://u@h:5432/db?table=x"
    assert location("runs/db") == Path("runs/db")
    for bad in ("http://host/db", "postgresql://u@h:notaport/db", "postgresql://u@h/db?table=Bad-Name"):
        with pytest.raises(InputError):
            location(bad)
    assert list(tmp_path.iterdir()) == []


def test_a_server_down_is_one_line(tmp_path: Path) -> None:
    from dnhcli.stores.postgres import PostgresStore

    with pytest.raises(DataError, match="cannot connect to PostgreSQL"):
        PostgresStore.open("postgresql://nobody:secret@127.0.0.1:9/db")
    try:
        PostgresStore.open("postgresql://nobody:secret@127.0.0.1:9/db")
    except DataError as exc:
        assert "secret" not in str(exc)


_INGEST = """
import sys, numpy as np
from dnhcli.stores.postgres import PostgresStore
store = PostgresStore.open(sys.argv[1])
for i in range(10_000):
    store.add(np.full((500, 6), i % 256, np.uint8), [{"batch": i}] * 500)
    print(i, flush=True)
"""


def test_a_server_killed_during_ingest_keeps_whole_batches(postgres, pg_url: str) -> None:
    from dnhcli.stores.postgres import PostgresStore

    PostgresStore.create(pg_url, 48, "fp").close()
    writer = subprocess.Popen(
        [sys.executable, "-c", _INGEST, pg_url], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    for _ in range(5):  # a few batches committed, then the server dies mid-ingest
        writer.stdout.readline()
    postgres.kill()
    writer.wait(timeout=60)
    assert writer.returncode != 0
    postgres.start()
    with PostgresStore.open(pg_url) as store:
        assert store.live % 500 == 0 and len(store) == store.live >= 5 * 500
        batches = {m["batch"] for m in store.metadata(store.live_ids())}
        assert batches == set(range(store.live // 500))
        before = store.live
        assert store.add(np.zeros((1, 6), np.uint8)).tolist() == [before]  # ingest goes on
