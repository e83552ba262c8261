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
