"""`dnh hash` and `dnh search` on a folder of real-world files: mixed formats and sizes, DICOM."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image
from typer.testing import CliRunner

from dnhcli.cli.app import app

runner = CliRunner()


def _folder(root: Path, dicom_writer) -> Path:
    rng = np.random.default_rng(3)
    scans = root / "scans"
    (scans / "ct" / "series1").mkdir(parents=True)
    Image.fromarray(rng.integers(0, 256, (512, 512), dtype=np.uint8)).save(scans / "big.png")
    Image.fromarray(rng.integers(0, 256, (300, 420, 3), dtype=np.uint8)).save(scans / "photo.jpg")
    Image.fromarray(rng.integers(0, 65536, (200, 150), dtype=np.uint16)).save(scans / "wide16.tif")
    dicom_writer(scans / "ct" / "series1" / "IM0001", rng.integers(0, 4096, (256, 256), dtype=np.uint16),
                 bits=12, slope=1.0, intercept=-1024.0, window=(40.0, 400.0))
    dicom_writer(scans / "ct" / "cine.dcm", rng.integers(0, 256, (2, 64, 64), dtype=np.uint8),
                 photometric="MONOCHROME1")
    return scans


def test_mixed_folder_hashes_and_searches(tmp_path: Path, trained_model: Path, dicom_writer) -> None:
    scans = _folder(tmp_path, dicom_writer)
    db = tmp_path / "db"
    done = runner.invoke(app, ["hash", "--model", str(trained_model), "--db", str(db), str(scans), "--json"])
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout)["added"] == 6  # 3 pictures, 1 DICOM, 2 frames of a cine
    found = runner.invoke(app, ["search", str(scans / "big.png"), "--model", str(trained_model),
                                "--db", str(db), "-k", "3", "--json"])
    assert found.exit_code == 0, found.output
    top = json.loads(found.stdout)["queries"][0]["results"][0]
    assert top["distance"] == 0 and top["source"].endswith("big.png")  # the same picture, first
    listed = runner.invoke(app, ["search", str(scans / "ct" / "series1" / "IM0001"), "--model",
                                 str(trained_model), "--db", str(db), "-k", "6", "--json"])
    rows = json.loads(listed.stdout)["queries"][0]["results"]
    dicom_rows = [r for r in rows if "sop_instance_uid" in r]
    assert len(dicom_rows) == 3 and {r.get("modality") for r in dicom_rows} == {"CR"}
    for file in db.rglob("*"):  # the patient's name, birth date and ID never enter the database
        if file.is_file():
            data = file.read_bytes()
            assert b"Doe" not in data and b"19700101" not in data and b"P-12345" not in data
