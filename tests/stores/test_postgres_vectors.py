"""Re-rank vectors in PostgreSQL: stored and read back byte for byte, refused when they do not
fit the database, gone with a deleted row, absent from old tables (which still open), and a
two-stage search that equals `two_stage_arrays` on one server and on three shards."""

from __future__ import annotations

import numpy as np
import pytest

from dnhcli.errors import DataError, InputError
from dnhcli.index.rerank import quantize_vectors, rerank_spec, two_stage_arrays
from dnhcli.index.search import topk_ties
from dnhcli.stores.two_stage import TwoStageSearch


def _items(n: int, bits: int = 48, values: int = 4, seed: int = 0):
    """Codes with few distinct values (many ties), their int8 vectors, keyed metadata."""
    rng = np.random.default_rng(seed)
    codes = rng.integers(0, values, (n, bits // 8), dtype=np.uint8)
    vectors = rng.integers(-128, 128, (n, bits), dtype=np.int16).astype(np.int8)
    meta = [{"source": f"img{i}.png", "key": f"k{i}"} for i in range(n)]
    return codes, vectors, meta


def _queries(q: int, bits: int = 48, values: int = 4, seed: int = 1):
    rng = np.random.default_rng(seed)
    return (rng.integers(0, values, (q, bits // 8), dtype=np.uint8),
            rng.uniform(-1, 1, (q, bits)).astype(np.float32))


def _assert_same(a: tuple[np.ndarray, ...], b: tuple[np.ndarray, ...]) -> None:
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)


def test_vectors_round_trip_and_mismatches_are_refused(pg_url: str) -> None:
    from dnhcli.stores.postgres import PostgresStore

    codes, vectors, meta = _items(300)
    vectors[0] = -128
    vectors[1] = 127
    vectors[2, :4] = [92, 10, 9, 0]  # bytes COPY escapes: backslash, newline, tab, NUL
    with PostgresStore.create(pg_url, 48, "fp", vectors=True) as store:
        assert store.has_vectors and store.manifest["rerank"] == rerank_spec(48)
        assert store.info()["rerank"] == rerank_spec(48)
        store.add(codes[:200], meta[:200], vectors[:200])
        store.add(codes[200:], meta[200:], vectors[200:])
        for bad in (None, vectors[:99], vectors[:100].astype(np.int16), vectors[:100, :47],
                    np.zeros((100, 48), np.float32)):
            with pytest.raises(InputError):
                store.add(codes[:100], None, bad)
        assert (len(store), store.live) == (300, 300)
        store.verify()
    with PostgresStore.open(pg_url) as store:
        assert store.has_vectors and store.info()["format_version"] == 2
        ids = np.array([299, 0, 2, 150, 0, 1])
        np.testing.assert_array_equal(store.vectors(ids), vectors[ids])
        np.testing.assert_array_equal(store.vectors(np.arange(300)), vectors)
        assert store.vectors([]).shape == (0, 48)
        with pytest.raises(InputError, match="out of range"):
            store.vectors([300])
    plain = pg_url + "?table=plain"
    with PostgresStore.create(plain, 48, "fp") as store:
        assert not store.has_vectors and store.info()["rerank"] is None
        with pytest.raises(InputError, match="stores no re-rank vectors"):
            store.add(codes[:5], None, vectors[:5])
        store.add(codes[:5])
        with pytest.raises(InputError, match="no re-rank vectors") as caught:
            store.vectors([0])
        assert "dnh db upgrade" in (caught.value.hint or "")
        assert store.live == 5


@pytest.mark.parametrize("bits", [48, 128])
def test_two_stage_equals_the_arrays(pg_url: str, bits: int) -> None:
    from dnhcli.stores.postgres import PostgresStore

    codes, vectors, meta = _items(1200, bits)
    queries, query_h = _queries(20, bits)
    with PostgresStore.create(pg_url, bits, "fp", vectors=True) as store:
        store.add(codes, meta, vectors)
        for k, oversample in ((1, 1), (1, 10), (5, 3), (10, 10), (50, 30), (2000, 1)):
            expected = two_stage_arrays(queries, query_h, codes, vectors, k, oversample)
            _assert_same(store.search_two_stage(queries, query_h, k, oversample), expected)
        for m in (1, 7, 100, 5000):  # the SQL candidates are the generic ones and topk_ties'
            found = store.candidates(queries, m)
            _assert_same(found, TwoStageSearch.candidates(store, queries, m))
            _assert_same(found, topk_ties(queries, codes, m))
        with pytest.raises(InputError, match="oversample"):
            store.search_two_stage(queries, query_h, 5, 0)
        with pytest.raises(InputError, match="shape"):
            store.search_two_stage(queries, query_h[:, :8], 5)


def test_the_whole_tie_at_the_cut_is_reranked(pg_url: str) -> None:
    """The item nearest by vector sits behind 1,000 others at the same Hamming distance (at
    distance 0, found by chunk lookups, and at 20, found by a scan): k=1, oversample=1 finds it."""
    from dnhcli.stores.postgres import PostgresStore

    rng = np.random.default_rng(3)
    query = np.zeros((1, 6), np.uint8)
    query_h = rng.uniform(-1, 1, (1, 48)).astype(np.float32)
    far = np.full((200, 6), 255, np.uint8)  # 48 bits away
    for distance, url in ((0, pg_url), (20, pg_url + "?table=t20")):
        tied = np.unpackbits(np.zeros((1001, 6), np.uint8), axis=1)
        tied[:, :distance] = 1
        tied = np.packbits(tied, axis=1)
        codes = np.concatenate([far, tied])
        vectors = quantize_vectors(-np.abs(rng.normal(size=(len(codes), 48))) * np.sign(query_h))
        vectors[-1] = quantize_vectors(query_h)[0]  # the true nearest: last in id order
        with PostgresStore.create(url, 48, vectors=True) as store:
            store.add(codes, None, vectors)
            hamming, score, ids = store.search_two_stage(query, query_h, 1, 1)
            assert ids.tolist() == [[len(codes) - 1]] and hamming.tolist() == [[distance]]
            assert score[0, 0] > 0.99
            _assert_same((hamming, score, ids), two_stage_arrays(query, query_h, codes, vectors, 1, 1))
            lims, _, found = store.candidates(query, 1)
            assert lims.tolist() == [0, 1001] and found.tolist() == list(range(200, 1201))


def test_a_deletion_takes_the_vector_with_the_row(pg_url: str) -> None:
    import psycopg

    from dnhcli.stores import copy_store
    from dnhcli.stores.locate import split_url
    from dnhcli.stores.postgres import PostgresStore

    codes, vectors, meta = _items(400)
    queries, query_h = _queries(15)
    gone = [0, 17, 250, 399]
    live = np.setdiff1d(np.arange(400), gone)
    with PostgresStore.create(pg_url, 48, "fp", vectors=True) as store:
        store.add(codes, meta, vectors)
        store.delete(gone)
        with pytest.raises(InputError, match="item 17 was deleted"):
            store.vectors([5, 17])
        for k, oversample in ((1, 1), (10, 10), (3, 100)):
            h, s, i = two_stage_arrays(queries, query_h, codes[live], vectors[live], k, oversample)
            _assert_same(store.search_two_stage(queries, query_h, k, oversample), (h, s, live[i]))
        store.compact()
        store.verify()
    copied = copy_store(pg_url, pg_url + "?table=copied")  # renumbered densely, vectors kept
    assert copied["rerank"] and copied["renumbered"] and copied["count"] == 396
    with PostgresStore.open(pg_url + "?table=copied") as copy:
        np.testing.assert_array_equal(copy.vectors(np.arange(396)), vectors[live])
        copy.verify()
    conninfo, table = split_url(pg_url)
    with psycopg.connect(conninfo) as conn:
        assert conn.execute(f"SELECT count(*) FROM {table} WHERE id = ANY(%s)", (gone,)).fetchone()[0] == 0
        assert conn.execute(f"SELECT count(v) FROM {table}").fetchone()[0] == 396


def test_an_old_table_opens_without_vectors(pg_url: str) -> None:
    """A table of format version 1 (no `rerank` facts column, no vector column) still opens,
    searches by Hamming distance and refuses two-stage search with a hint; a newer one is refused."""
    import psycopg

    from dnhcli.stores.locate import split_url
    from dnhcli.stores.postgres import PostgresStore

    codes, _, meta = _items(100)
    queries, query_h = _queries(3)
    with PostgresStore.create(pg_url, 48, "fp") as store:
        store.add(codes, meta)
    conninfo, table = split_url(pg_url)
    with psycopg.connect(conninfo) as conn:  # as dnh wrote it before re-rank vectors
        conn.execute(f"ALTER TABLE {table}_facts DROP COLUMN rerank")
        conn.execute(f"UPDATE {table}_facts SET format_version = 1")
    with PostgresStore.open(pg_url) as store:
        assert not store.has_vectors and store.manifest["rerank"] is None
        assert store.info()["format_version"] == 1 and store.info()["rerank"] is None
        assert store.search(queries, 5)[1].shape == (3, 5)
        with pytest.raises(InputError, match="no re-rank vectors") as caught:
            store.search_two_stage(queries, query_h, 5)
        assert "upgrade" in (caught.value.hint or "")
        with pytest.raises(InputError, match="no re-rank vectors"):
            store.add(codes[:1], None, np.zeros((1, 48), np.int8))
        assert store.add(codes[:1]).tolist() == [100]
        store.verify()
    with psycopg.connect(conninfo) as conn:
        conn.execute(f"UPDATE {table}_facts SET format_version = 99")
    with pytest.raises(DataError, match="format version 99"):
        PostgresStore.open(pg_url)


def test_verify_finds_a_bad_vector(pg_url: str) -> None:
    import psycopg

    from dnhcli.stores.locate import split_url
    from dnhcli.stores.postgres import PostgresStore

    codes, vectors, _ = _items(50)
    with PostgresStore.create(pg_url, 48, vectors=True) as store:
        store.add(codes, None, vectors)
        conninfo, table = split_url(pg_url)
        with psycopg.connect(conninfo) as conn:
            with pytest.raises(psycopg.errors.CheckViolation):  # the table refuses a short vector
                conn.execute(f"UPDATE {table} SET v = '\\x01' WHERE id = 7")
        with psycopg.connect(conninfo) as conn:
            conn.execute(f"ALTER TABLE {table} DROP CONSTRAINT {table}_v_check")
            conn.execute(f"UPDATE {table} SET v = '\\x01' WHERE id = 7")
        with pytest.raises(DataError, match="item 7 has no re-rank vector of 48 bytes"):
            store.verify()


def test_sharded_two_stage_equals_one_server(pg_url: str, sharded_url: str) -> None:
    import psycopg

    from dnhcli.stores.postgres import PostgresStore

    codes, vectors, meta = _items(2400, seed=5)
    queries, query_h = _queries(15, seed=6)
    with (
        PostgresStore.create(pg_url, 48, "fp", vectors=True) as single,
        PostgresStore.create(sharded_url, 48, "fp", vectors=True) as sharded,
    ):
        for store in (single, sharded):
            store.add(codes[:1000], meta[:1000], vectors[:1000])
            store.add(codes[1000:], meta[1000:], vectors[1000:])
            store.delete([10, 2000])
        assert len(sharded.shards) == 3 and sharded.has_vectors
        for k, oversample in ((1, 1), (10, 10), (20, 50)):
            _assert_same(single.search_two_stage(queries, query_h, k, oversample),
                         sharded.search_two_stage(queries, query_h, k, oversample))
        for m in (1, 100, 3000):
            _assert_same(single.candidates(queries, m), sharded.candidates(queries, m))
        ids = np.array([2399, 3, 1500, 3])
        np.testing.assert_array_equal(sharded.vectors(ids), vectors[ids])
        with pytest.raises(InputError, match="deleted"):
            sharded.vectors([2000])
        sharded.verify()
        counts = []
        for n, url in enumerate(sharded.shards):  # each shard holds its rows' vectors
            with psycopg.connect(url) as conn:
                counts.append(conn.execute(f"SELECT count(v) FROM dnh_codes_p{n} "
                                           "WHERE octet_length(v) = 48").fetchone()[0])
        assert sum(counts) == 2398 and min(counts) > 500
