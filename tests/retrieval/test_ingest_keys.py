"""Idempotent ingest: stable keys, reruns that add only new images, --on-duplicate."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from dnhcli.cli.app import app
from dnhcli.data import images as images_module
from dnhcli.errors import InputError
from dnhcli.retrieval.hashing import HashConfig, hash_into_db
from dnhcli.stores.hashdb import HashDB

runner = CliRunner()


def _archive(root: Path, dicom_writer) -> Path:
    rng = np.random.default_rng(5)
    (root / "a" / "b").mkdir(parents=True)
    Image.fromarray(rng.integers(0, 256, (100, 140), dtype=np.uint8)).save(root / "a" / "x.png")
    np.save(root / "a" / "stack.npy", rng.integers(0, 256, (3, 28, 28), dtype=np.uint8))
    dicom_writer(root / "a" / "b" / "cine.dcm", rng.integers(0, 256, (2, 40, 40), dtype=np.uint8))
    return root


def _keys(db: Path) -> list[str]:
    with HashDB.open(db) as database:
        return [m["key"] for m in database.metadata(range(len(database)))]


def test_a_rerun_adds_only_new_images(tmp_path: Path, trained_model: Path, dicom_writer,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    root, db = _archive(tmp_path / "archive", dicom_writer), tmp_path / "db"
    first = hash_into_db(HashConfig(model=trained_model, db=db, inputs=(root,)))
    assert (first.added, first.skipped, first.count) == (6, 0, 6)
    keys = _keys(db)
    assert sum(k.startswith("dicom:") and k.endswith(("[0]", "[1]")) for k in keys) == 2
    assert any(k.startswith("file:a/x.png#sha256:") for k in keys)
    assert any(k.startswith("file:a/stack.npy#sha256:") and k.endswith("[2]") for k in keys)
    # stored files are not decoded again
    monkeypatch.setattr(images_module, "load_picture", lambda path: pytest.fail("decoded again"))
    monkeypatch.setattr(images_module, "read_dicom", lambda path: pytest.fail("decoded again"))
    again = hash_into_db(HashConfig(model=trained_model, db=db, inputs=(root,)))
    assert (again.added, again.skipped, again.count) == (0, 6, 6)
    monkeypatch.undo()
    Image.fromarray(np.zeros((50, 50), np.uint8)).save(root / "a" / "new.png")
    grown = hash_into_db(HashConfig(model=trained_model, db=db, inputs=(root,)))
    assert (grown.added, grown.skipped, grown.count) == (1, 6, 7)
    # the same archive elsewhere keeps its keys; the same file twice in one run is stored once
    moved = tmp_path / "elsewhere"
    shutil.copytree(root, moved)
    same = hash_into_db(HashConfig(model=trained_model, db=db, inputs=(moved, moved)))
    assert same.added == 0 and same.count == 7 and same.skipped == 14  # the folder named twice
    alone = hash_into_db(HashConfig(model=trained_model, db=db, inputs=(moved / "a" / "x.png",)))
    assert alone.added == 1  # a file given alone is keyed relative to its own folder: "x.png"


def test_a_file_changed_in_place_gets_a_new_key(tmp_path: Path, trained_model: Path) -> None:
    picture = tmp_path / "in" / "scan.png"
    picture.parent.mkdir()
    Image.fromarray(np.zeros((40, 40), np.uint8)).save(picture)
    db = tmp_path / "db"
    hash_into_db(HashConfig(model=trained_model, db=db, inputs=(picture.parent,)))
    Image.fromarray(np.full((40, 40), 200, np.uint8)).save(picture)
    assert hash_into_db(HashConfig(model=trained_model, db=db, inputs=(picture.parent,))).added == 1
    assert len(set(_keys(db))) == 2


def test_on_duplicate_error_refuses_before_writing(tmp_path: Path, trained_model: Path,
                                                   synthetic_dataset: Path) -> None:
    db = tmp_path / "db"
    split = HashConfig(model=trained_model, db=db, data=synthetic_dataset, split="query")
    assert hash_into_db(split).added > 0
    before = {p.name: p.read_bytes() for p in db.iterdir()}
    with pytest.raises(InputError, match="stored already"):
        hash_into_db(HashConfig(model=trained_model, db=db, data=synthetic_dataset, split="query",
                                on_duplicate="error"))
    assert {p.name: p.read_bytes() for p in db.iterdir()} == before
    assert hash_into_db(split).skipped == len(_keys(db))
    with pytest.raises(InputError, match="--on-duplicate"):
        hash_into_db(HashConfig(model=trained_model, db=db, data=synthetic_dataset, on_duplicate="keep"))


def test_cli_reports_added_and_skipped(tmp_path: Path, trained_model: Path) -> None:
    np.save(tmp_path / "q.npy", np.random.default_rng(0).integers(0, 256, (4, 28, 28), dtype=np.uint8))
    args = ["hash", "--model", str(trained_model), "--db", str(tmp_path / "db"), str(tmp_path / "q.npy"),
            "--json"]
    first, second = (json.loads(runner.invoke(app, args).stdout) for _ in range(2))
    assert (first["added"], first["skipped"]) == (4, 0) and (second["added"], second["skipped"]) == (0, 4)
    refused = runner.invoke(app, [*args, "--on-duplicate", "error"])
    assert refused.exit_code == 1 and "stored already" in refused.stderr


def test_on_duplicate_replace_deletes_the_stored_item_and_adds_the_new(tmp_path: Path,
                                                                      trained_model: Path) -> None:
    np.save(tmp_path / "q.npy", np.random.default_rng(1).integers(0, 256, (3, 28, 28), dtype=np.uint8))
    db = tmp_path / "db"
    hash_into_db(HashConfig(model=trained_model, db=db, inputs=(tmp_path / "q.npy",)))
    again = hash_into_db(HashConfig(model=trained_model, db=db, inputs=(tmp_path / "q.npy",),
                                    on_duplicate="replace"))
    assert (again.added, again.replaced, again.skipped, again.count) == (3, 3, 0, 3)
    with HashDB.open(db) as database:
        assert database.deleted_ids().tolist() == [0, 1, 2] and database.live_ids().tolist() == [3, 4, 5]
        assert len({m["key"] for m in database.metadata(database.live_ids())}) == 3
