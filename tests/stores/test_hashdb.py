"""Tests of dnhcli.stores.hashdb: results equal brute force, metadata, compaction, the lock,
corruption detection, bad input, model checks, and appends killed with SIGKILL."""

from __future__ import annotations

import inspect
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from dnhcli.errors import DataError, InputError, ModelError
from dnhcli.index.codes import hamming_distances
from dnhcli.stores.hashdb import MANIFEST, DatabaseLockedError, HashDB
from dnhcli.stores.segments import CRASH_ENV

REPO = Path(__file__).resolve().parents[2]


def batch(b: int, bits: int = 48) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """Batch b: 1-40 codes drawn from a small pool (many exact ties) and their metadata."""
    rng = np.random.default_rng(1000 + b)
    pool = np.random.default_rng(7).integers(0, 256, (12, bits // 8), dtype=np.uint8)
    n = int(rng.integers(1, 41))
    codes = pool[rng.integers(0, len(pool), n)]
    flip = rng.random(n) < 0.3
    codes[flip, 0] ^= np.uint8(1)
    meta = [{"source": f"gallery/{b}/{i}", "organ": int(rng.integers(0, 11)),
             "disease": int(rng.integers(0, 5)), "labels": [int(b % 2), int(i % 3)]}
            for i in range(n)]
    return codes, meta


# A writer subprocess: appends batches first..last-1, printing each one's number once committed.
WRITER = '''
from __future__ import annotations
import sys
from typing import Any
import numpy as np
''' + inspect.getsource(batch) + '''
from dnhcli.stores.hashdb import HashDB
path, first, last, max_segments = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
db = HashDB.open(path, verify=False)
db.max_segments = max_segments
print("ready", flush=True)
for b in range(first, last):
    db.add(*batch(b))
    print(b, flush=True)
db.close()
'''


def brute_topk(queries: np.ndarray, codes: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    dist = hamming_distances(queries, codes)
    order = np.argsort(dist, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(dist, order, 1), order


def assert_search_matches(db: HashDB, codes: np.ndarray, queries: np.ndarray) -> None:
    for k in (1, 7, len(codes) + 3):
        dist, ids = db.search(queries, k)
        want_d, want_i = brute_topk(queries, codes, k)
        np.testing.assert_array_equal(dist, want_d)
        np.testing.assert_array_equal(ids, want_i)
        assert dist.dtype == np.int32 and ids.dtype == np.int64
    full = hamming_distances(queries, codes)
    for radius in (0, 1, 3, db.bits):
        lims, dist, ids = db.range_search(queries, radius)
        assert lims[0] == 0 and len(lims) == len(queries) + 1
        for q in range(len(queries)):
            want = np.flatnonzero(full[q] <= radius)
            want = want[np.argsort(full[q][want], kind="stable")]
            np.testing.assert_array_equal(ids[lims[q]:lims[q + 1]], want)
            np.testing.assert_array_equal(dist[lims[q]:lims[q + 1]], full[q][want])


def expected(batches: int) -> tuple[np.ndarray, list[dict[str, Any]]]:
    parts = [batch(b) for b in range(batches)]
    codes = np.concatenate([c for c, _ in parts]) if parts else np.zeros((0, 6), np.uint8)
    metas = [m for _, ms in parts for m in ms]
    return codes, [{"id": i, **m} for i, m in enumerate(metas)]


def assert_holds(path: Path, batches: int) -> None:
    """The database verifies and holds exactly batches 0..batches-1; search equals brute force."""
    codes, metas = expected(batches)
    with HashDB.open(path, verify=True) as db:
        assert len(db) == len(codes)
        np.testing.assert_array_equal(db.codes(), codes)
        assert db.metadata(np.arange(len(db))) == metas
        assert_search_matches(db, codes, batch(99)[0][:5])


def make_db(path: Path, batches: int, max_segments: int = 16) -> None:
    with HashDB.create(path, 48, model_fingerprint="fp-a", model_info={"arch": "tiny"}) as db:
        db.max_segments = max_segments
        for b in range(batches):
            db.add(*batch(b))


def folder_bytes(path: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(path.iterdir())}


def referenced_only(path: Path) -> bool:
    names = {s["name"] for s in json.loads((path / MANIFEST).read_text())["segments"]}
    return all(f in (MANIFEST, ".lock") or f.split(".")[0] in names for f in os.listdir(path))


# ---- results, metadata, facts -------------------------------------------------------------
@pytest.mark.parametrize("bits", [8, 48, 128])
def test_search_equals_brute_force_across_segments(tmp_path: Path, bits: int) -> None:
    rng = np.random.default_rng(bits)
    pool = rng.integers(0, 256, (6, bits // 8), dtype=np.uint8)
    parts = [pool[rng.integers(0, 6, n)] for n in (50, 1, 17, 200, 3)]
    with HashDB.create(tmp_path / "db", bits) as db:
        for i, part in enumerate(parts):
            ids = db.add(part)
            assert ids.tolist() == list(range(sum(map(len, parts[:i])), sum(map(len, parts[:i + 1]))))
        assert db.segment_count == 5 and len(db) == 271 and db.bits == bits
        codes = np.concatenate(parts)
        queries = np.concatenate([pool[:3], rng.integers(0, 256, (4, bits // 8), dtype=np.uint8)])
        assert_search_matches(db, codes, queries)
    with HashDB.open(tmp_path / "db") as db:
        assert_search_matches(db, codes, queries)
        np.testing.assert_array_equal(db.codes(), codes)


def test_empty_database_and_empty_queries(tmp_path: Path) -> None:
    with HashDB.create(tmp_path / "db", 16) as db:
        dist, ids = db.search(np.zeros((2, 2), np.uint8), 5)
        assert dist.shape == ids.shape == (2, 0)
        lims, dist, ids = db.range_search(np.zeros((2, 2), np.uint8), 3)
        assert lims.tolist() == [0, 0, 0] and len(ids) == 0
        assert db.add(np.zeros((0, 2), np.uint8)).shape == (0,) and db.segment_count == 0
        db.add(np.zeros((3, 2), np.uint8))
        assert db.search(np.zeros((0, 2), np.uint8), 2)[1].shape == (0, 2)
        assert db.range_search(np.zeros((0, 2), np.uint8), 2)[0].tolist() == [0]


def test_metadata_round_trip(tmp_path: Path) -> None:
    make_db(tmp_path / "db", 2)
    extra = [{"source": Path("/images/é.png"), "organ": np.int64(3), "labels": np.array([0, 1]),
              "score": np.float32(0.5), "nested": {"a": [1, None, True]}}]
    with HashDB.open(tmp_path / "db") as db:
        n = len(db)
        db.add(batch(50)[0][:1], [{**extra[0], "id": n}])
        with pytest.raises(InputError, match=f"assigns id {n + 1}"):
            db.add(batch(50)[0][:1], [{"id": 0}])
    with HashDB.open(tmp_path / "db") as db:
        assert db.metadata([n, 0]) == [
            {"id": n, "source": "/images/é.png", "organ": 3, "labels": [0, 1], "score": 0.5,
             "nested": {"a": [1, None, True]}}, expected(1)[1][0]]
        assert db.metadata([]) == []
        with pytest.raises(InputError, match="out of range"):
            db.metadata([n + 1])
        with pytest.raises(InputError, match="out of range"):
            db.metadata([-1])


def test_reopen_keeps_facts(tmp_path: Path) -> None:
    make_db(tmp_path / "db", 3)
    with HashDB.open(tmp_path / "db", verify=True) as db:
        assert (db.bits, db.model_fingerprint, db.model_info) == (48, "fp-a", {"arch": "tiny"})
        manifest = db.manifest
        assert manifest["format"] == "dnh-hashdb" and manifest["format_version"] == 3
        assert manifest["count"] == len(db) == len(expected(3)[0])
        assert manifest["checksum"] == "crc32" and "numpy" in manifest["versions"]
        assert "big-endian" in manifest["bit_order"] and manifest["created"]
    assert_holds(tmp_path / "db", 3)


def test_compaction_keeps_ids_order_and_results(tmp_path: Path) -> None:
    path = tmp_path / "db"
    with HashDB.create(path, 48) as db:
        db.max_segments = 4
        for b in range(30):
            db.add(*batch(b))
            assert db.segment_count <= 4
        assert referenced_only(path)
    assert_holds(path, 30)
    with HashDB.open(path) as db:
        db.compact()
        assert db.segment_count == 1
    assert referenced_only(path) and len(os.listdir(path)) == 6  # manifest, lock, one segment of 4 files
    assert_holds(path, 30)


def test_reader_keeps_its_snapshot_while_a_writer_compacts(tmp_path: Path) -> None:
    path = tmp_path / "db"
    make_db(path, 6)
    codes, metas = expected(6)
    reader = HashDB.open(path)
    with HashDB.open(path) as writer:
        writer.add(*batch(6))
        writer.compact()  # deletes the files the reader has mapped
    assert len(reader) == len(codes) and reader.segment_count == 6
    assert_search_matches(reader, codes, batch(99)[0][:4])
    assert reader.metadata([0, len(codes) - 1]) == [metas[0], metas[-1]]
    reader.close()
    with pytest.raises(InputError, match="closed"):
        reader.search(codes[:1], 1)
    assert_holds(path, 7)


def test_check_model_names_both(tmp_path: Path) -> None:
    make_db(tmp_path / "db", 1)
    with HashDB.open(tmp_path / "db") as db:
        db.check_model(48, "fp-a")
        with pytest.raises(ModelError, match="64-bit.*48-bit"):
            db.check_model(64, "fp-a")
        with pytest.raises(ModelError, match="fp-b.*fp-a"):
            db.check_model(48, "fp-b")


# ---- the lock --------------------------------------------------------------------------------
def test_second_writer_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "db"
    make_db(path, 1)
    writer = HashDB.open(path)
    writer.add(*batch(1))
    other = HashDB.open(path)  # readers need no lock
    assert len(other) == len(writer)
    with pytest.raises(DatabaseLockedError, match=f"process {os.getpid()}"):
        other.add(*batch(2))
    script = ("import numpy as np\nfrom dnhcli.stores.hashdb import HashDB\n"
              "from dnhcli.errors import DnhError\n"
              f"try:\n    HashDB.open({str(path)!r}).add(np.zeros((1, 6), np.uint8))\n"
              "except DnhError as e:\n    print(e)\n")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO,
                         check=True).stdout
    assert f"being written by process {os.getpid()}" in out
    writer.close()
    other.add(*batch(2))  # catches up with the writer's commit, then appends
    other.close()
    assert_holds(path, 3)


# ---- corruption ------------------------------------------------------------------------------
def _segment_file(path: Path, suffix: str) -> Path:
    return next(p for p in sorted(path.iterdir()) if p.name.endswith(suffix))


@pytest.mark.parametrize("suffix", [".codes", ".meta.jsonl", ".meta.idx", MANIFEST])
def test_truncated_file_is_detected(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / "db"
    make_db(path, 3)
    file = _segment_file(path, suffix)
    file.write_bytes(file.read_bytes()[:-1])
    with pytest.raises(DataError, match=file.name):
        HashDB.open(path, verify=False)  # sizes are checked even without verify


@pytest.mark.parametrize("suffix", [".codes", ".meta.jsonl", ".meta.idx"])
def test_bit_flip_in_segment_is_detected(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / "db"
    make_db(path, 3)
    file = _segment_file(path, suffix)
    original = file.read_bytes()
    rng = np.random.default_rng(0)
    for pos in {0, len(original) - 1, *rng.integers(0, len(original), 10).tolist()}:
        data = bytearray(original)
        data[pos] ^= 1 << int(rng.integers(0, 8))
        file.write_bytes(bytes(data))
        with pytest.raises(DataError, match=file.name):
            HashDB.open(path, verify=True)
    file.write_bytes(original)
    assert_holds(path, 3)


def test_bit_flip_anywhere_in_manifest_is_detected(tmp_path: Path) -> None:
    path = tmp_path / "db"
    make_db(path, 3)
    file = path / MANIFEST
    original = file.read_bytes()
    rng = np.random.default_rng(1)
    for pos in range(len(original)):  # every byte, one random bit each
        data = bytearray(original)
        data[pos] ^= 1 << int(rng.integers(0, 8))
        file.write_bytes(bytes(data))
        with pytest.raises(DataError, match=MANIFEST):
            HashDB.open(path, verify=False)
    file.write_bytes(original)
    assert_holds(path, 3)


def test_missing_or_foreign_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not found"):
        HashDB.open(tmp_path / "nothing")
    (tmp_path / "other").mkdir()
    with pytest.raises(DataError, match="not a dnh hash database"):
        HashDB.open(tmp_path / "other")
    (tmp_path / "other" / MANIFEST).write_text('{"format": "dnh-dataset"}')
    with pytest.raises(DataError, match="not a dnh hash database"):
        HashDB.open(tmp_path / "other")


def test_create_refuses_existing_or_nonempty(tmp_path: Path) -> None:
    make_db(tmp_path / "db", 1)
    with pytest.raises(InputError, match="already exists") as info:
        HashDB.create(tmp_path / "db", 48)
    assert info.value.hint
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x.txt").write_text("x")
    with pytest.raises(InputError, match="not empty"):
        HashDB.create(tmp_path / "full", 48)
    with pytest.raises(InputError, match="is a file"):
        HashDB.create(tmp_path / "full" / "x.txt", 48)
    with pytest.raises(InputError, match="bit length"):
        HashDB.create(tmp_path / "new", 12)


# ---- bad input -------------------------------------------------------------------------------
def test_bad_input_leaves_database_byte_identical(tmp_path: Path) -> None:
    path = tmp_path / "db"
    make_db(path, 3)
    before = folder_bytes(path)
    good = np.zeros((2, 6), np.uint8)
    bad_adds: list[tuple[Any, Any]] = [
        (good.astype(np.int64), None), (np.zeros((2, 8), np.uint8), None), (np.zeros(6, np.uint8), None),
        (np.zeros((1, 2, 6), np.uint8), None), (good, [{}]), (good, {"a": 1}), (good, [{}, 3]),
        (good, [{}, {"x": object()}]), (good, [{}, {"x": float("nan")}]), (good, [{}, {1: "a"}]),
        (good, [{"id": 5}, {}]),
    ]
    with HashDB.open(path) as db:
        for codes, meta in bad_adds:
            with pytest.raises(InputError):
                db.add(codes, meta)
        for call in (lambda: db.search(good.astype(np.float32), 3), lambda: db.search(good, 0),
                     lambda: db.search(np.zeros((2, 5), np.uint8), 3), lambda: db.search(good, True),
                     lambda: db.range_search(good, -1), lambda: db.range_search(good[0], 2)):
            with pytest.raises(InputError):
                call()
    assert folder_bytes(path) == before
    assert_holds(path, 3)


# ---- crashes ---------------------------------------------------------------------------------
def run_writer(path: Path, first: int, last: int, max_segments: int = 16,
               crash_at: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, CRASH_ENV: crash_at} if crash_at else dict(os.environ)
    return subprocess.run([sys.executable, "-c", WRITER, str(path), str(first), str(last),
                           str(max_segments)], capture_output=True, text=True, env=env, cwd=REPO,
                          timeout=60)


APPEND_POINTS = {"mid-codes": False, "after-codes": False, "mid-meta": False, "after-meta": False,
                 "before-manifest": False, "mid-manifest": False, "after-manifest": True}
COMPACT_POINTS = ["compact-after-codes", "compact-after-meta", "compact-before-manifest",
                  "compact-mid-manifest", "compact-after-manifest"]


@pytest.mark.parametrize("point", [*APPEND_POINTS, *COMPACT_POINTS])
def test_append_killed_at_a_point_leaves_a_consistent_database(tmp_path: Path, point: str) -> None:
    path = tmp_path / "db"
    make_db(path, 3)  # three segments; the killed writer's append makes four > max_segments=3
    done = run_writer(path, 3, 4, max_segments=3, crash_at=point)
    assert done.returncode == -signal.SIGKILL, done.stderr
    committed = APPEND_POINTS.get(point, True)
    assert_holds(path, 4 if committed else 3)
    with HashDB.open(path) as db:  # the next writer cleans up the leftovers and appends
        db.max_segments = 3
        db.add(*batch(4 if committed else 3))
    assert referenced_only(path)
    assert_holds(path, 5 if committed else 4)


def test_appends_killed_at_random_times(tmp_path: Path) -> None:
    path = tmp_path / "db"
    make_db(path, 0)
    rng = np.random.default_rng(2024)
    batches = 0
    for _ in range(4):
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path), str(batches), "100000", "3"],
                                stdout=subprocess.PIPE, text=True, cwd=REPO)
        assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
        time.sleep(float(rng.uniform(0.05, 0.6)))
        proc.send_signal(signal.SIGKILL)
        printed = proc.communicate()[0].split()
        assert proc.returncode == -signal.SIGKILL
        finished = int(printed[-1]) + 1 if printed else batches
        sizes = np.cumsum([0] + [len(batch(b)[0]) for b in range(finished + 1)])
        with HashDB.open(path) as db:
            count = len(db)
        # whole batches only: the completed ones, or also the one interrupted after its commit
        assert count in (sizes[finished], sizes[finished + 1])
        batches = finished + int(count == sizes[finished + 1])
        assert_holds(path, batches)
    assert batches >= 4


def test_consolidated_search_equals_the_per_segment_one(tmp_path) -> None:
    """A database of several segments held as one array answers exactly as before, and a write
    after consolidating drops the copy rather than search stale codes."""
    import numpy as np

    from dnhcli.stores.hashdb import HashDB

    rng = np.random.default_rng(3)
    with HashDB.create(tmp_path / "db", 16) as db:
        for _ in range(3):
            db.add(rng.integers(0, 256, (500, 2), dtype=np.uint8))
        db.delete([5, 700])
    queries = rng.integers(0, 256, (20, 2), dtype=np.uint8)
    with HashDB.open(tmp_path / "db") as db:
        before = db.search(queries, 25), db.range_search(queries, 3)
        db.consolidate()
        after = db.search(queries, 25), db.range_search(queries, 3)
        for old, new in zip([*before[0], *before[1]], [*after[0], *after[1]]):
            np.testing.assert_array_equal(old, new)
        db.add(queries[:1])
        assert db.search(queries[:1], 1)[1][0, 0] == 1500  # the new code, distance 0, found
