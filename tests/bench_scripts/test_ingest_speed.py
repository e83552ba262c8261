"""The ingest benchmark's tiny run: every configuration hashes every image, and the JSON
document holds what the report needs (timings are never asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "ingest_speed.py"


def test_ingest_speed_script_counts_every_image(exported: Path, tmp_path: Path) -> None:
    pytest.importorskip("ray")
    pytest.importorskip("pydicom")
    command = [sys.executable, str(SCRIPT), "--images", "6", "--rounds", "1", "--breakdown-images", "4",
               "--model", str(exported / "encoder.onnx"), "--scratch", str(tmp_path / "work"), "--json"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout)
    expected = {"cpu", "cores", "images", "rounds", "timed", "configs", "ratios", "ceiling", "per_image"}
    assert expected <= set(report)
    assert report["images"] == 6 and report["rounds"] == 1
    rows = {row["name"]: row for row in report["configs"]}
    assert set(rows) == {"local", "local-default", "ray-1", "ray-2"}
    for row in rows.values():
        assert len(row["runs"]) == 1
        run = row["runs"][0]
        assert run["added"] == run["count"] == 6 and run["failed"] == 0
        assert {"images_per_s", "net_images_per_s", "fixed_s", "images_per_s_spread"} <= set(row)
    assert set(report["ratios"]) == {"ray-2/ray-1", "ray-1/local", "ray-2/local", "local/local-default"}
    assert set(report["per_image"]["ms"]) == {"plan", "read_decode", "fit", "encode", "write"}
    assert report["per_image"]["images"] == 4
    assert {"1_process", "2_process", "ratio"} <= set(report["ceiling"])
    assert "ray-2/ray-1" in done.stderr  # the table, beside the JSON
    assert list((tmp_path / "work").glob("db*")) == []  # every run's database was removed


def test_ingest_speed_script_refuses_too_few_images(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, str(SCRIPT), "--images", "2", "--small", "2"], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode != 0 and "--images must exceed --small" in done.stderr
