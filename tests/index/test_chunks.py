"""Multi-index hashing finds exactly what a scan finds, and steps aside when it would not pay."""

from __future__ import annotations

import numpy as np
import pytest

from dnhcli.index.chunks import ChunkIndex, ball, chunks_of
from dnhcli.index.search import range_search


def test_ball_holds_every_value_within_the_radius() -> None:
    values = ball(0b1010, 2, width=6)
    assert len(values) == len(set(values)) == 1 + 6 + 15
    assert all(bin(v ^ 0b1010).count("1") <= 2 for v in values)


def test_chunks_are_big_endian_16_bit_pieces() -> None:
    codes = np.array([[0x12, 0x34, 0x56, 0x78, 0x9A, 0xBC]], np.uint8)
    assert chunks_of(codes, 48).tolist() == [[0x1234, 0x5678, 0x9ABC]]
    assert chunks_of(codes[:, :3], 24).tolist() == [[0x1234, 0x5600]]


@pytest.mark.parametrize("bits", [16, 24, 48, 64, 128])
def test_index_range_equals_a_scan(bits: int) -> None:
    rng = np.random.default_rng(bits)
    codes = rng.integers(0, 256, (20_000, bits // 8), dtype=np.uint8)
    queries = np.concatenate(
        [
            codes[:30] ^ (rng.random((30, bits // 8)) < 0.02).astype(np.uint8),
            rng.integers(0, 256, (10, bits // 8), dtype=np.uint8),
        ]
    )
    index = ChunkIndex(codes, bits)
    m = -(-bits // 16)
    for radius in range(0, 2 * m):
        found = index.range(queries, radius)
        assert found is not None, radius
        for a, b in zip(found, range_search(queries, codes, radius)):
            np.testing.assert_array_equal(a, b)
    assert index.range(queries, 2 * m) is None  # a chunk ball of 2 bits: scan instead


def test_crowded_codes_fall_back_to_a_scan() -> None:
    codes = np.zeros((1000, 6), np.uint8)  # every code equal: all are candidates
    assert ChunkIndex(codes, 48).range(codes[:1], 0) is None


def test_the_database_uses_the_index_and_leaves_deleted_items_out(tmp_path) -> None:
    from dnhcli.stores.hashdb import HashDB

    rng = np.random.default_rng(5)
    codes = rng.integers(0, 256, (70_000, 6), dtype=np.uint8)
    with HashDB.create(tmp_path / "db", 48) as db:
        db.add(codes[:40_000])
        db.add(codes[40_000:])
        db.delete([3, 50_000])
    queries = codes[:40] ^ (rng.random((40, 6)) < 0.01).astype(np.uint8)
    with HashDB.open(tmp_path / "db") as db:
        scanned = db.range_search(queries[:4], 2)  # few queries: a scan
        assert db._chunks is None
        indexed = db.range_search(queries, 2)  # many: the index is built and used
        assert db._chunks is not None
        for a, b in zip(scanned, db.range_search(queries[:4], 2)):
            np.testing.assert_array_equal(a, b)
        lims, _, ids = indexed
        assert 3 not in ids.tolist() and 50_000 not in ids.tolist() and lims[-1] >= 36


def test_a_consolidated_database_indexes_at_its_first_radius_search(tmp_path) -> None:
    """A server's snapshot pays for the index only once a radius search comes, then uses it."""
    from dnhcli.stores.hashdb import HashDB

    codes = np.random.default_rng(6).integers(0, 256, (70_000, 6), dtype=np.uint8)
    with HashDB.create(tmp_path / "db", 48) as db:
        db.add(codes)
    with HashDB.open(tmp_path / "db") as db:
        db.consolidate()
        assert db._chunks is None
        db.search(codes[:1], 5)
        assert db._chunks is None  # top k never needs it
        lims, dist, ids = db.range_search(codes[:1], 1)
        assert db._chunks is not None and ids[0] == 0 and dist[0] == 0
