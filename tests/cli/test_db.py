"""`dnh db info|verify|compact|delete`: JSON contracts, erasure from the files, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image
from typer.testing import CliRunner

from dnhcli.cli.app import app

runner = CliRunner()


def _db(tmp_path: Path, model: Path) -> tuple[Path, Path]:
    scans = tmp_path / "scans"
    scans.mkdir()
    rng = np.random.default_rng(0)
    for i in range(5):
        Image.fromarray(rng.integers(0, 256, (60 + i, 50), dtype=np.uint8)).save(scans / f"patient{i}.png")
    db = tmp_path / "db"
    done = runner.invoke(app, ["hash", "--model", str(model), "--db", str(db), str(scans), "--json"])
    assert done.exit_code == 0, done.output
    return db, scans


def _json(args: list[str]) -> dict:
    done = runner.invoke(app, args)
    assert done.exit_code == 0, done.output
    return json.loads(done.stdout)


def test_info_verify_delete_compact(tmp_path: Path, trained_model: Path) -> None:
    db, scans = _db(tmp_path, trained_model)
    info = _json(["db", "info", str(db), "--json"])
    assert info["model"]["stored"].endswith("encoder.onnx") and info["model"]["classes"]
    assert (info["count"], info["deleted"], info["bits"], info["format_version"]) == (5, 0, 16, 3)
    assert info["model"]["arch"] and len(info["model"]["fingerprint"]) == 64 and info["bytes"] > 0
    assert _json(["db", "verify", str(db), "--json"])["ok"] is True
    found = _json(["search", str(scans / "patient2.png"), "--model", str(trained_model), "--db", str(db),
                   "-k", "5", "--json"])["queries"][0]["results"]
    key = next(r["key"] for r in found if r["source"].endswith("patient2.png"))
    gone = _json(["db", "delete", str(db), "--key", key, "--source", str(scans / "patient4.png"), "--json"])
    assert [d["source"].endswith(("patient2.png", "patient4.png")) for d in gone["deleted"]] == [True, True]
    assert gone["count"] == 3
    after = _json(["search", str(scans / "patient2.png"), "--model", str(trained_model), "--db", str(db),
                   "-k", "5", "--json"])["queries"][0]["results"]
    assert len(after) == 3 and not any(r["source"].endswith(("patient2.png", "patient4.png")) for r in after)
    asymmetric = _json(["search", str(scans / "patient2.png"), "--db", str(db), "-k", "5",
                        "--tie-break", "asymmetric", "--json"])["queries"][0]["results"]
    assert sorted(r["id"] for r in asymmetric) == sorted(r["id"] for r in after)
    files = b"".join(p.read_bytes() for p in db.iterdir() if p.is_file())
    assert b"patient2.png" in files  # still in its segment until compaction
    compacted = _json(["db", "compact", str(db), "--json"])
    assert compacted["segments"] == 1 and compacted["erased"] == 2 and compacted["count"] == 3
    files = b"".join(p.read_bytes() for p in db.iterdir() if p.is_file())
    assert b"patient2.png" not in files and key.encode() not in files and b"patient3.png" in files
    rehash = _json(["hash", "--model", str(trained_model), "--db", str(db), str(scans), "--json"])
    assert (rehash["added"], rehash["skipped"]) == (2, 3)  # deleted images can be hashed again


def test_db_errors_are_one_line_and_change_nothing(tmp_path: Path, trained_model: Path) -> None:
    db, scans = _db(tmp_path, trained_model)
    before = {p.name: p.read_bytes() for p in db.iterdir()}
    (tmp_path / "empty").mkdir()
    from dnhcli.stores.hashdb import HashDB

    HashDB.create(tmp_path / "bare", 16).close()  # built without a stored model
    cases = [
        (["db", "delete", str(db), "--key", "file:nothing#sha256:0"], "no item has the key"),
        (["db", "delete", str(db), "--id", "0", "--key", "nope"], "no item has the key"),
        (["db", "delete", str(db), "--id", "99"], "not in the hash database"),
        (["db", "delete", str(db), "--source", "/no/such/file.png"], "no item comes from"),
        (["db", "delete", str(db)], "nothing to delete"),
        (["db", "info", str(tmp_path / "empty")], "not a dnh hash database"),
        (["db", "compact", str(tmp_path / "empty")], "not a dnh hash database"),
        (["db", "verify", str(tmp_path / "missing")], "not found"),
        (["search", str(scans / "patient0.png"), "--db", str(tmp_path / "bare")], "stores no model"),
    ]
    for args, message in cases:
        done = runner.invoke(app, args)
        assert done.exit_code == 1, (args, done.output)
        assert message in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert {p.name: p.read_bytes() for p in db.iterdir()} == before
    segment = next(db.glob("*.codes"))
    segment.write_bytes(bytes(b ^ 1 for b in segment.read_bytes()))
    done = runner.invoke(app, ["db", "verify", str(db)])
    assert done.exit_code == 1 and "checksum" in done.stderr


def _old_copy(new: Path, old: Path) -> None:
    """`new` as dnh wrote databases before re-rank vectors (format 2, codes and metadata only)."""
    from dnhcli.manifest import canonical_json
    from dnhcli.stores.hashdb import HashDB
    from dnhcli.stores.segments import MANIFEST, sealed

    with HashDB.open(new) as source, HashDB.create(old, source.bits, source.model_fingerprint,
                                                    source.model_info, source.model_path) as target:
        ids = source.live_ids()
        target.add(source.codes()[ids], [{k: v for k, v in m.items() if k != "id"}
                                         for m in source.metadata(ids)])
    manifest = json.loads((old / MANIFEST).read_text())
    manifest["format_version"] = 2
    (old / MANIFEST).write_text(canonical_json(sealed(manifest)))


def test_an_old_database_searches_by_hamming_then_upgrades(tmp_path: Path, trained_model: Path) -> None:
    db, scans = _db(tmp_path, trained_model)
    old = tmp_path / "old"
    _old_copy(db, old)
    done = runner.invoke(app, ["search", str(scans / "patient0.png"), "--db", str(old), "-k", "3", "--json"])
    assert done.exit_code == 0, done.output
    answer = json.loads(done.stdout)
    assert answer["rerank"] is False and "no re-rank vectors" in done.stderr
    assert all(hit["score"] is None for hit in answer["queries"][0]["results"])
    bad = runner.invoke(app, ["db", "upgrade", str(old), "--out", str(tmp_path / "none")])
    assert bad.exit_code == 1 and bad.stderr.count("\n") == 1 and "nothing to hash" in bad.stderr
    upgraded = _json(["db", "upgrade", str(old), "--out", str(tmp_path / "new"), str(scans), "--json"])
    assert (upgraded["count"], upgraded["rerank"], upgraded["upgraded"]) == (5, True, True)
    assert _json(["db", "info", str(tmp_path / "new"), "--json"])["rerank"]["kind"] == "h-int8"
    answer = _json(["search", str(scans / "patient0.png"), "--db", str(tmp_path / "new"), "-k", "3",
                    "--json"])
    first = answer["queries"][0]["results"][0]
    assert answer["rerank"] is True and first["source"].endswith("patient0.png") and first["score"] > 0.99
    again = runner.invoke(app, ["db", "upgrade", str(tmp_path / "new"), "--out", str(tmp_path / "x"),
                                str(scans)])
    assert again.exit_code == 1 and "already" in again.stderr
    for flags in (["--oversample", "0"], ["--oversample", "1001"]):
        refused = runner.invoke(app, ["search", str(scans / "patient0.png"), "--db", str(db), *flags])
        assert refused.exit_code == 2
