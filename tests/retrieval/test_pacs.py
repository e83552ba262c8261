"""`dnh hash --source orthanc+http://...`: the instances of a real Orthanc, hashed as the same
DICOM files would be, once."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from dnhcli.cli.app import app

runner = CliRunner()


def _files(tmp_path: Path, synthetic_dataset: Path, dicom_writer, count: int = 5) -> list[Path]:
    folder = tmp_path / "scans"
    folder.mkdir()
    images = np.load(synthetic_dataset / "query_images.npy")[:count]
    files = [
        dicom_writer(
            folder / f"s{i}.dcm",
            np.kron(image, np.ones((4, 4), np.uint8)).astype(np.uint16) * 200,
            window=(25000.0, 50000.0),
        )
        for i, image in enumerate(images)
    ]
    files.append(dicom_writer(folder / "frames.dcm", np.stack([images[0], images[1]])))  # two frames
    return files


def _hash(*args: str) -> dict:
    result = runner.invoke(app, ["hash", *args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def _stored(db: Path) -> dict[str, tuple[bytes, dict]]:
    from dnhcli.stores.hashdb import HashDB

    with HashDB.open(db) as handle:
        ids = handle.live_ids()
        return {
            m["key"]: (handle.codes()[i].tobytes(), m) for i, m in zip(ids.tolist(), handle.metadata(ids))
        }


def test_orthanc_instances_hash_like_their_files_once(
    tmp_path: Path, orthanc, trained_model: Path, synthetic_dataset: Path, dicom_writer
) -> None:
    files = _files(tmp_path, synthetic_dataset, dicom_writer)
    for path in files:
        orthanc.upload(path.read_bytes())
    source = "orthanc+" + orthanc.url
    first = _hash("--model", str(trained_model), "--db", str(tmp_path / "pacs-db"), "--source", source)
    assert first["added"] == len(files) + 1  # the two-frame instance gives two images
    again = _hash("--model", str(trained_model), "--db", str(tmp_path / "pacs-db"), "--source", source)
    assert again["added"] == 0 and again["skipped"] == len(files) + 1
    _hash("--model", str(trained_model), "--db", str(tmp_path / "file-db"), str(tmp_path / "scans"))
    from_pacs, from_files = _stored(tmp_path / "pacs-db"), _stored(tmp_path / "file-db")
    assert set(from_pacs) == set(from_files) and all(k.startswith("dicom:") for k in from_pacs)
    for key, (code, meta) in from_pacs.items():
        assert code == from_files[key][0]
        assert meta["source"].startswith("orthanc:") and meta["study_instance_uid"]
    for path in (tmp_path / "pacs-db").iterdir():
        if path.is_file():
            assert b"Doe^Jane" not in path.read_bytes() and b"P-12345" not in path.read_bytes()


def test_a_new_instance_is_the_only_one_fetched(
    tmp_path: Path, orthanc, trained_model: Path, synthetic_dataset: Path, dicom_writer, monkeypatch
) -> None:
    files = _files(tmp_path, synthetic_dataset, dicom_writer, count=2)
    orthanc.upload(files[0].read_bytes())
    source = "orthanc+" + orthanc.url
    db = str(tmp_path / "db")
    _hash("--model", str(trained_model), "--db", db, "--source", source)
    new = orthanc.upload(files[1].read_bytes())
    from dnhcli.retrieval import pacs

    fetched: list[str] = []
    original = pacs.Orthanc.get
    monkeypatch.setattr(
        pacs.Orthanc, "get", lambda self, path: (fetched.append(path), original(self, path))[1]
    )
    assert _hash("--model", str(trained_model), "--db", db, "--source", source)["added"] == 1
    assert [p for p in fetched if p.endswith("/file")] == [
        f"/instances/{new}/file"
    ] * 2  # check + hash passes


def test_an_unreachable_pacs_is_one_line(tmp_path: Path, trained_model: Path) -> None:
    result = runner.invoke(
        app,
        [
            "hash",
            "--model",
            str(trained_model),
            "--db",
            str(tmp_path / "db"),
            "--source",
            "orthanc+http://127.0.0.1:9",
        ],
    )
    assert result.exit_code == 1 and "cannot reach Orthanc" in result.output
    assert not (tmp_path / "db").exists()
