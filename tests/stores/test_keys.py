"""Stable keys: the per-segment key index, uniqueness, lookups without a scan, old databases."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from dnhcli.errors import DataError, InputError
from dnhcli.manifest import canonical_json
from dnhcli.stores.hashdb import HashDB
from dnhcli.stores.segments import MANIFEST, Segment, key_hash, sealed


def _items(start: int, n: int, keyed: bool = True) -> tuple[np.ndarray, list[dict[str, object]]]:
    codes = np.random.default_rng(start).integers(0, 256, (n, 6), dtype=np.uint8)
    return codes, [{"source": f"s{start + i}", **({"key": f"file:s{start + i}"} if keyed else {})}
                   for i in range(n)]


def test_find_by_key_across_segments_and_compaction(tmp_path: Path) -> None:
    with HashDB.create(tmp_path / "db", 48) as db:
        for start in range(0, 300, 50):
            db.add(*_items(start, 50))
        db.add(*_items(1000, 5, keyed=False))  # items without a key are allowed
        wanted = ["file:s0", "file:s123", "file:s299", "file:missing", "s5"]
        assert db.find(wanted).tolist() == [0, 123, 299, -1, -1]
        db.compact()
        assert db.segment_count == 1 and db.find(wanted).tolist() == [0, 123, 299, -1, -1]
    with HashDB.open(tmp_path / "db") as db:
        assert db.find(["file:s77"]).tolist() == [77]
        assert db.metadata([77])[0]["key"] == "file:s77"


def test_keys_are_unique(tmp_path: Path) -> None:
    with HashDB.create(tmp_path / "db", 48) as db:
        db.add(*_items(0, 10))
        before = (tmp_path / "db" / MANIFEST).read_bytes()
        with pytest.raises(InputError, match="already stored"):
            db.add(*_items(5, 10))
        codes, meta = _items(100, 2)
        meta[1]["key"] = meta[0]["key"]
        with pytest.raises(InputError, match="given twice"):
            db.add(codes, meta)
        meta[1]["key"] = 7
        with pytest.raises(InputError, match="non-empty string"):
            db.add(codes, meta)
        assert (tmp_path / "db" / MANIFEST).read_bytes() == before and len(db) == 10


def test_a_lookup_reads_one_record_not_the_database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with HashDB.create(tmp_path / "db", 48) as db:
        db.add(*_items(0, 5000))
        reads = []
        real = Segment.record
        monkeypatch.setattr(Segment, "record", lambda self, local: reads.append(local) or real(self, local))
        assert db.find(["file:s4321"]).tolist() == [4321] and reads == [4321]


def test_a_damaged_key_index_is_detected(tmp_path: Path) -> None:
    with HashDB.create(tmp_path / "db", 48) as db:
        db.add(*_items(0, 20))
    keys = next((tmp_path / "db").glob("*.keys"))
    original = keys.read_bytes()
    keys.write_bytes(original[:-1])
    with pytest.raises(DataError, match=keys.name):
        HashDB.open(tmp_path / "db", verify=False)
    flipped = bytearray(original)
    flipped[3] ^= 4
    keys.write_bytes(bytes(flipped))
    with pytest.raises(DataError, match=keys.name):
        HashDB.open(tmp_path / "db")
    keys.write_bytes(original)
    assert HashDB.open(tmp_path / "db").find(["file:s3"]).tolist() == [3]


def test_a_format_1_database_opens_and_is_upgraded_on_write(tmp_path: Path) -> None:
    path = tmp_path / "db"
    with HashDB.create(path, 48) as db:
        db.add(*_items(0, 10, keyed=False))
    manifest = json.loads((path / MANIFEST).read_text())  # what dnh before keys wrote
    for entry in manifest["segments"]:
        del entry["files"]["keys"]
        (path / f"{entry['name']}.keys").unlink()
    manifest["format_version"] = 1
    (path / MANIFEST).write_text(canonical_json(sealed(manifest)))
    with HashDB.open(path) as db:
        assert len(db) == 10 and db.find(["file:s1"]).tolist() == [-1]
        db.add(*_items(10, 5))
        assert db.find(["file:s12"]).tolist() == [12]
        db.compact()
        assert db.find(["file:s12"]).tolist() == [12] and db.manifest["format_version"] == 3


def test_key_hash_is_stable() -> None:  # stored on disk: it must never change between versions
    assert key_hash("dicom:1.2.3") == int.from_bytes(
        __import__("hashlib").blake2b(b"dicom:1.2.3", digest_size=8).digest(), "little")
