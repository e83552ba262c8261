"""Re-rank vectors in the folder store: stored, read back, two-stage search equal to the in-memory
one, erased by deletion and compaction, checked by verify, copied, and a database written before
them that still opens and searches by Hamming distance alone."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from dnhcli.errors import DataError, InputError
from dnhcli.index.rerank import quantize_vectors, two_stage_arrays
from dnhcli.manifest import canonical_json
from dnhcli.stores import copy_store
from dnhcli.stores.hashdb import HashDB
from dnhcli.stores.segments import MANIFEST, sealed

BITS = 48


def items(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, list[dict[str, str]]]:
    """n items whose codes come from a pool of 6 (many ties) and whose vectors all differ."""
    rng = np.random.default_rng(seed)
    pool = rng.integers(0, 256, (6, BITS // 8), dtype=np.uint8)
    codes = pool[rng.integers(0, 6, n)]
    vectors = quantize_vectors(rng.uniform(-1, 1, (n, BITS)))
    return codes, vectors, [{"key": f"k{seed}-{i}", "source": f"s{seed}-{i}"} for i in range(n)]


def make(path: Path, batches: int = 3) -> tuple[np.ndarray, np.ndarray]:
    all_codes, all_vectors = [], []
    with HashDB.create(path, BITS, vectors=True) as db:
        for b in range(batches):
            codes, vectors, meta = items(20 + b, seed=b)
            db.add(codes, meta, vectors)
            all_codes.append(codes)
            all_vectors.append(vectors)
    return np.concatenate(all_codes), np.concatenate(all_vectors)


def test_vectors_are_stored_and_two_stage_equals_in_memory(tmp_path: Path) -> None:
    codes, vectors = make(tmp_path / "db")
    rng = np.random.default_rng(5)
    queries, query_h = codes[[0, 30, 50]], rng.uniform(-1, 1, (3, BITS)).astype(np.float32)
    with HashDB.open(tmp_path / "db") as db:
        assert db.has_vectors and db.info()["rerank"]["kind"] == "h-int8"
        assert np.array_equal(db.vectors([5, 0, 62]), vectors[[5, 0, 62]])
        for k, oversample in ((1, 1), (5, 2), (10, 10), (100, 1)):
            got = db.search_two_stage(queries, query_h, k, oversample)
            want = two_stage_arrays(queries, query_h, codes, vectors, k, oversample)
            for a, b in zip(got, want):
                assert np.array_equal(a, b)
        _, score, ids = db.search_two_stage(queries, query_h, 3)
        assert (np.diff(score, axis=1) <= 0).all() and ids.shape == (3, 3)


def test_adds_must_match_what_the_database_stores(tmp_path: Path) -> None:
    codes, vectors, meta = items(4)
    with HashDB.create(tmp_path / "with", BITS, vectors=True) as db:
        with pytest.raises(InputError, match="re-rank vector"):
            db.add(codes, meta)
        with pytest.raises(InputError, match="int8"):
            db.add(codes, meta, vectors.astype(np.float32))
        with pytest.raises(InputError, match="shape"):
            db.add(codes, meta, vectors[:3])
        assert db.live == 0
    with HashDB.create(tmp_path / "without", BITS) as db:
        with pytest.raises(InputError, match="no re-rank vectors"):
            db.add(codes, meta, vectors)
        db.add(codes, meta)
        with pytest.raises(InputError, match="no re-rank vectors"):
            db.vectors([0])
        with pytest.raises(InputError, match="no re-rank vectors"):
            db.search_two_stage(codes[:1], np.zeros((1, BITS), np.float32), 2)


def test_deletion_leaves_results_and_compaction_erases_the_vector(tmp_path: Path) -> None:
    codes, vectors = make(tmp_path / "db")
    query_h = vectors[7:8].astype(np.float32) / 127
    with HashDB.open(tmp_path / "db") as db:
        assert db.search_two_stage(codes[7:8], query_h, 1)[2].tolist() == [[7]]
        db.delete([7])
        assert 7 not in db.search_two_stage(codes[7:8], query_h, 70)[2]
        with pytest.raises(InputError, match="deleted"):
            db.vectors([7])
        db.compact()
        assert db.segment_count == 1
    with HashDB.open(tmp_path / "db") as db:
        segment = db._segments[0]
        assert not segment.vectors[7].any() and segment.vectors[8].any()
        raw = np.fromfile(segment.paths["vectors"], np.int8).reshape(-1, BITS)
        assert not raw[7].any() and np.array_equal(raw[8], vectors[8])
        live = db.live_ids()
        assert np.array_equal(db.vectors(live), vectors[live])


def test_verify_catches_a_changed_vector_file(tmp_path: Path) -> None:
    make(tmp_path / "db", batches=1)
    with HashDB.open(tmp_path / "db") as db:
        path = db._segments[0].paths["vectors"]
    data = bytearray(path.read_bytes())
    data[3] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(DataError, match="checksum"):
        HashDB.open(tmp_path / "db")


def test_copy_keeps_vectors_and_upgrades_an_old_database(tmp_path: Path) -> None:
    codes, vectors = make(tmp_path / "db")
    with HashDB.open(tmp_path / "db") as db:
        db.delete([3])
    copy_store(tmp_path / "db", tmp_path / "copy")
    live = np.setdiff1d(np.arange(len(codes)), [3])
    with HashDB.open(tmp_path / "copy") as copied:
        assert copied.has_vectors and np.array_equal(copied.vectors(np.arange(len(live))), vectors[live])
    codes, plain_vectors, meta = items(8)
    with HashDB.create(tmp_path / "old", BITS) as old:
        old.add(codes, meta)
    by_key = {m["key"]: v for m, v in zip(meta, plain_vectors)}
    report = copy_store(tmp_path / "old", tmp_path / "new",
                        vectors_for=lambda records: np.stack([by_key[r["key"]] for r in records]))
    assert report["rerank"] is True
    with HashDB.open(tmp_path / "new") as new:
        assert np.array_equal(new.vectors(np.arange(8)), plain_vectors)


def test_a_database_of_format_2_opens_and_searches_by_hamming(tmp_path: Path) -> None:
    codes, _, meta = items(10)
    with HashDB.create(tmp_path / "old", BITS) as db:
        db.add(codes, meta)
    manifest = json.loads((tmp_path / "old" / MANIFEST).read_text())
    manifest["format_version"] = 2  # as dnh wrote it before re-rank vectors
    (tmp_path / "old" / MANIFEST).write_text(canonical_json(sealed(manifest)))
    with HashDB.open(tmp_path / "old") as db:
        assert not db.has_vectors and db.search(codes[:1], 3)[1].shape == (1, 3)
        db.add(*items(2, seed=9)[::2])
        assert db.manifest["format_version"] == 3 and not db.has_vectors


def test_candidates_with_deletions_equal_the_generic_two_scans(tmp_path: Path) -> None:
    from dnhcli.stores.two_stage import TwoStageSearch

    codes, _ = make(tmp_path / "db", batches=4)
    with HashDB.open(tmp_path / "db") as db:
        db.delete([0, 1, 2, 25, 40, 41])
        for m in (1, 3, 17, 200):
            fast = db.candidates(codes[[0, 25, 60]], m)
            slow = TwoStageSearch.candidates(db, codes[[0, 25, 60]], m)
            for a, b in zip(fast, slow):
                assert np.array_equal(a, b)


def test_one_segment_without_deletions_searches_like_many(tmp_path: Path) -> None:
    """The shortcuts of a compacted, consolidated database (one scan, one segment's vectors) give
    the same candidates, vectors and two-stage answers as the general path."""
    from dnhcli.stores.two_stage import TwoStageSearch

    codes, vectors = make(tmp_path / "db", batches=4)
    query_h = np.random.default_rng(9).uniform(-1, 1, (3, BITS)).astype(np.float32)
    queries = codes[[0, 25, 60]]
    with HashDB.open(tmp_path / "db") as db:
        before = [db.search_two_stage(queries, query_h, k, 3) for k in (1, 4, 30)]
        db.compact()
    with HashDB.open(tmp_path / "db") as db:
        db.consolidate()
        assert np.array_equal(db.vectors([62, 0, 5]), vectors[[62, 0, 5]])
        for m in (1, 3, 17, 200):
            fast = db.candidates(queries, m)
            slow = TwoStageSearch.candidates(db, queries, m)
            for a, b in zip(fast, slow):
                assert np.array_equal(a, b)
        for k, want in zip((1, 4, 30), before):
            for a, b in zip(db.search_two_stage(queries, query_h, k, 3), want):
                assert np.array_equal(a, b)
