"""Deleting items: gone from every answer at once, gone from every file after compaction, ids
kept; a delete is one atomic commit."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from dnhcli.errors import DataError, InputError
from dnhcli.stores.hashdb import HashDB
from dnhcli.stores.segments import CRASH_ENV, MANIFEST


def _db(path: Path, n: int = 60, batches: int = 3) -> None:
    rng = np.random.default_rng(0)
    with HashDB.create(path, 48) as db:
        for b in range(batches):
            codes = rng.integers(0, 256, (n // batches, 6), dtype=np.uint8)
            start = b * (n // batches)
            db.add(codes, [{"source": f"secret-{start + i}", "key": f"k{start + i}"}
                           for i in range(len(codes))])


def _all_bytes(path: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(path.iterdir()) if p.is_file())


def test_deleted_items_are_never_returned(tmp_path: Path) -> None:
    path = tmp_path / "db"
    _db(path)
    with HashDB.open(path) as db:
        codes = db.codes()
        victim = 25
        assert db.search(codes[victim:victim + 1], 1)[1][0, 0] == victim
        assert db.delete([victim, 3]).tolist() == [3, 25]
        assert db.live == 58 and len(db) == 60
        dist, ids = db.search(codes[victim:victim + 1], 60)
        assert victim not in ids and 3 not in ids and ids.shape == (1, 58)
        lims, _, found = db.range_search(codes[victim:victim + 1], 48)
        assert victim not in found and lims[-1] == 58
        assert db.find(["k25", "k26"]).tolist() == [-1, 26]
        with pytest.raises(InputError, match="was deleted"):
            db.metadata([25])
        with pytest.raises(InputError, match="deleted already"):
            db.delete([25])
        with pytest.raises(InputError, match="not in the hash database"):
            db.delete([60])
    with HashDB.open(path) as db:  # a new reader sees the same
        assert db.deleted_ids().tolist() == [3, 25] and db.live_ids()[:4].tolist() == [0, 1, 2, 4]


def test_compaction_erases_the_data_and_keeps_ids(tmp_path: Path) -> None:
    path = tmp_path / "db"
    _db(path)
    with HashDB.open(path) as db:
        kept = db.metadata([40])[0]
        db.delete([25])
        assert b"secret-25" in _all_bytes(path)  # until compaction, the bytes are still there
        db.compact()
        assert db.segment_count == 1
    data = _all_bytes(path)
    assert b"secret-25" not in data and b'"k25"' not in data and b"secret-24" in data
    with HashDB.open(path) as db:
        assert db.metadata([40])[0] == kept and db.find(["k25"]).tolist() == [-1]
        assert 25 not in db.search(db.codes()[24:26], 60)[1]
        db.compact()  # nothing left to erase: a no-op
        assert db.segment_count == 1
        db.add(np.zeros((1, 6), np.uint8), [{"key": "k25", "source": "again"}])  # a key may come back
        assert db.find(["k25"]).tolist() == [60]


def test_a_single_segment_is_rewritten_to_erase(tmp_path: Path) -> None:
    path = tmp_path / "db"
    _db(path, n=10, batches=1)
    with HashDB.open(path) as db:
        db.delete([4])
        db.compact()
    assert b"secret-4" not in _all_bytes(path)


def test_a_damaged_deletion_file_is_detected(tmp_path: Path) -> None:
    path = tmp_path / "db"
    _db(path)
    with HashDB.open(path) as db:
        db.delete([1, 2])
    file = next(path.glob("del-*.ids"))
    file.write_bytes(file.read_bytes()[:-8])
    with pytest.raises(DataError, match=file.name):
        HashDB.open(path)


@pytest.mark.parametrize("point", ["delete-mid-ids", "delete-before-manifest", "delete-mid-manifest",
                                   "delete-after-manifest"])
def test_a_delete_killed_at_any_point_is_all_or_nothing(tmp_path: Path, point: str) -> None:
    path = tmp_path / "db"
    _db(path)
    code = ("from dnhcli.stores.hashdb import HashDB\n"
            f"HashDB.open({str(path)!r}).delete([5, 6, 7])\n")
    done = subprocess.run([sys.executable, "-c", code], env={**os.environ, CRASH_ENV: point},
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == -9, done.stderr
    with HashDB.open(path) as db:
        deleted = db.deleted_ids().tolist()
        assert deleted in ([], [5, 6, 7])
        assert (deleted == [5, 6, 7]) == (point == "delete-after-manifest")
        db.delete([8])  # the next writer cleans up and goes on
    names = set(os.listdir(path))
    assert len([n for n in names if n.startswith("del-")]) == 1 and MANIFEST in names


def test_search_with_many_deletions_equals_brute_force_over_the_live_items(tmp_path: Path) -> None:
    path = tmp_path / "db"
    _db(path, n=300, batches=3)
    rng = np.random.default_rng(7)
    with HashDB.open(path) as db:
        codes = db.codes()
        db.delete(rng.choice(300, 200, replace=False))
        live = db.live_ids()
        queries = codes[:20]
        dist, ids = db.search(queries, 10)
        bits = np.unpackbits(np.bitwise_xor(queries[:, None], codes[None, live]), axis=2).sum(axis=2)
        order = np.lexsort((np.broadcast_to(live, bits.shape), bits), axis=1)[:, :10]
        assert np.array_equal(ids, live[order]) and np.array_equal(dist, np.take_along_axis(bits, order, 1))
