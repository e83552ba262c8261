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
    from dnhcli.ingest.sources import HttpClient

    fetched: list[str] = []
    original = HttpClient.get
    monkeypatch.setattr(
        HttpClient, "get", lambda self, path, **kw: (fetched.append(path), original(self, path, **kw))[1]
    )
    assert _hash("--model", str(trained_model), "--db", db, "--source", source)["added"] == 1
    assert [p for p in fetched if p.endswith("/file")] == [f"/instances/{new}/file"]  # once


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


def test_ray_hashes_every_instance_once_like_local(
    tmp_path: Path, orthanc, ray_cluster, exported: Path, synthetic_dataset: Path, dicom_writer
) -> None:
    files = _files(tmp_path, synthetic_dataset, dicom_writer)
    for path in files:
        orthanc.upload(path.read_bytes())
    orthanc.upload(dicom_writer(tmp_path / "nopixels.dcm", np.zeros((8, 8), np.uint16),
                                pixel_data=b"\x00" * 10).read_bytes())
    model, source = str(exported / "encoder.onnx"), "orthanc+" + orthanc.url
    local = _hash("--model", model, "--db", str(tmp_path / "local"), "--source", source,
                  "--failure-log", str(tmp_path / "local.log"))
    ray = _hash("--model", model, "--db", str(tmp_path / "ray"), "--source", source, "--engine", "ray",
                "--failure-log", str(tmp_path / "ray.log"))
    assert ray["added"] == local["added"] == len(files) + 1
    assert ray["failed"] == local["failed"] == 1 and ray["failed_keys"] == local["failed_keys"]
    assert _stored(tmp_path / "ray") == _stored(tmp_path / "local")
    again = _hash("--model", model, "--db", str(tmp_path / "ray"), "--source", source, "--engine", "ray",
                  "--failure-log", str(tmp_path / "ray.log"))
    assert (again["added"], again["skipped"], again["failed"]) == (0, len(files) + 1, 1)


def test_a_checkpoint_lists_only_what_arrived_since(
    tmp_path: Path, orthanc, trained_model: Path, synthetic_dataset: Path, dicom_writer, monkeypatch
) -> None:
    from dnhcli.ingest.sources import HttpClient

    files = _files(tmp_path, synthetic_dataset, dicom_writer, count=3)
    for path in files[:2]:
        orthanc.upload(path.read_bytes())
    source, checkpoint = "orthanc+" + orthanc.url, tmp_path / "nightly.json"
    args = ("--model", str(trained_model), "--db", str(tmp_path / "db"), "--source", source,
            "--checkpoint", str(checkpoint))
    assert _hash(*args)["added"] == 2 and json.loads(checkpoint.read_text())["orthanc_change"] > 0
    orthanc.upload(files[2].read_bytes())
    asked: list[str] = []
    original = HttpClient.get
    monkeypatch.setattr(HttpClient, "get", lambda self, path, **kw: (asked.append(path),
                                                                      original(self, path, **kw))[1])
    second = _hash(*args)
    assert second["added"] == 1 and second["skipped"] == 0  # the old ones are not even listed
    assert not any(p.startswith("/instances?") for p in asked)
    assert _hash(*args)["added"] == 0
    bad = runner.invoke(app, ["hash", "--model", str(trained_model), "--db", str(tmp_path / "db"),
                              "--source", "orthanc+http://127.0.0.1:9", "--checkpoint", str(checkpoint)])
    assert bad.exit_code == 1


def test_since_takes_the_instances_received_after_a_time(
    tmp_path: Path, orthanc, trained_model: Path, synthetic_dataset: Path, dicom_writer
) -> None:
    import time
    from datetime import datetime, timezone

    files = _files(tmp_path, synthetic_dataset, dicom_writer, count=4)
    for path in files[:2]:
        orthanc.upload(path.read_bytes())
    time.sleep(1.5)  # Orthanc dates changes to the second
    since = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    time.sleep(1.5)
    for path in files[2:4]:
        orthanc.upload(path.read_bytes())
    out = _hash("--model", str(trained_model), "--db", str(tmp_path / "db"), "--source",
                "orthanc+" + orthanc.url, "--since", since)
    assert out["added"] == 2
    keys = set(_stored(tmp_path / "db"))
    import pydicom

    assert keys == {f"dicom:{pydicom.dcmread(p).SOPInstanceUID}" for p in files[2:4]}
