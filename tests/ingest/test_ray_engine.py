"""`dnh hash --engine ray`: the same items as `--engine local`, once, through a killed worker
and past unreadable images."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from dnhcli.cli.app import app

runner = CliRunner()
pytestmark = pytest.mark.usefixtures("ray_cluster")


def _hash(*args: str, code: int = 0) -> dict:
    result = runner.invoke(app, ["hash", *args, "--json"])
    assert result.exit_code == code, result.output
    return json.loads(result.stdout) if code == 0 else {"output": result.output}


def _items(db: Path) -> tuple[np.ndarray, list[dict]]:
    from dnhcli.stores.hashdb import HashDB

    with HashDB.open(db) as handle:
        ids = handle.live_ids()
        return handle.codes()[ids], handle.metadata(ids)


def _vectors(db: Path) -> np.ndarray:
    from dnhcli.stores.hashdb import HashDB

    with HashDB.open(db) as handle:
        return handle.vectors(handle.live_ids()).astype(np.int16)


@pytest.mark.parametrize("model_kind", ["checkpoint", "onnx", "openvino"])
def test_ray_stores_what_local_stores(tmp_path: Path, mixed_inputs: Path, trained_model: Path,
                                      exported: Path, model_kind: str) -> None:
    model = {"checkpoint": trained_model, "onnx": exported / "encoder.onnx",
             "openvino": exported / "encoder.xml"}[model_kind]
    local = _hash("--model", str(model), "--db", str(tmp_path / "local"), str(mixed_inputs))
    ray = _hash("--model", str(model), "--db", str(tmp_path / "ray"), str(mixed_inputs), "--engine", "ray",
                "--workers", "2")
    assert ray["added"] == local["added"] == 3 + 1 + 5 + 2 + 2 and ray["engine"] == "ray"
    codes_local, meta_local = _items(tmp_path / "local")
    codes_ray, meta_ray = _items(tmp_path / "ray")
    assert np.array_equal(codes_local, codes_ray)  # same order too: the same ids
    assert meta_local == meta_ray
    # the re-rank vectors too (within one int8 step: a thread count may move h in its last bits)
    assert np.abs(_vectors(tmp_path / "local") - _vectors(tmp_path / "ray")).max() <= 1
    again = _hash("--model", str(model), "--db", str(tmp_path / "ray"), str(mixed_inputs), "--engine", "ray")
    assert again["added"] == 0 and again["skipped"] == ray["added"]


def test_a_split_in_small_chunks_and_a_grown_folder(tmp_path: Path, synthetic_dataset: Path,
                                                    trained_model: Path, mixed_inputs: Path) -> None:
    model = ("--model", str(trained_model))
    local = _hash(*model, "--db", str(tmp_path / "local"), "--data", str(synthetic_dataset), "--chunk", "10")
    ray = _hash(*model, "--db", str(tmp_path / "ray"), "--data", str(synthetic_dataset), "--chunk", "10",
                "--engine", "ray")
    assert ray["added"] == local["added"] > 40
    assert np.array_equal(_items(tmp_path / "local")[0], _items(tmp_path / "ray")[0])
    first = _hash(*model, "--db", str(tmp_path / "grown"), str(mixed_inputs / "sub"), "--engine", "ray")
    np.save(mixed_inputs / "sub" / "new.npy", np.zeros((28, 28), np.uint8))
    second = _hash(*model, "--db", str(tmp_path / "grown"), str(mixed_inputs / "sub"), "--engine", "ray")
    assert (first["added"], second["added"], second["skipped"]) == (3, 1, 3)


def test_a_killed_worker_is_replaced_and_its_batch_retried(tmp_path: Path, mixed_inputs: Path,
                                                           exported: Path, monkeypatch) -> None:
    from dnhcli.ingest.ray_engine import KILL_ENV

    model = ("--model", str(exported / "encoder.onnx"))
    marker = tmp_path / "kill-one-worker"
    marker.touch()
    monkeypatch.setenv(KILL_ENV, str(marker))
    ray = _hash(*model, "--db", str(tmp_path / "ray"), str(mixed_inputs), "--engine", "ray")
    assert not marker.exists()  # a worker found it, deleted it and was killed (SIGKILL)
    monkeypatch.delenv(KILL_ENV)
    local = _hash(*model, "--db", str(tmp_path / "local"), str(mixed_inputs))
    assert ray["added"] == local["added"] and ray["failed"] == 0
    assert np.array_equal(_items(tmp_path / "local")[0], _items(tmp_path / "ray")[0])
    assert _items(tmp_path / "local")[1] == _items(tmp_path / "ray")[1]


def test_unreadable_images_are_skipped_and_reported(tmp_path: Path, mixed_inputs: Path, exported: Path,
                                                    dicom_writer) -> None:
    (mixed_inputs / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    dicom_writer(mixed_inputs / "short.dcm", np.zeros((16, 16), np.uint16), pixel_data=b"\x00" * 10)
    model = ("--model", str(exported / "encoder.onnx"))
    log = tmp_path / "failures.jsonl"
    out = _hash(*model, "--db", str(tmp_path / "db"), str(mixed_inputs), "--engine", "ray",
                "--failure-log", str(log))
    assert out["added"] == 13 and out["failed"] == 2 and out["failure_log"] == str(log)
    assert len(out["failed_keys"]) == 2 and any(k.startswith("file:broken.png#") for k in out["failed_keys"])
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert sorted(Path(r["source"]).name for r in records) == ["broken.png", "short.dcm"]
    assert all(r["error"] and r["keys"] for r in records)
    again = _hash(*model, "--db", str(tmp_path / "db"), str(mixed_inputs), "--engine", "ray",
                  "--failure-log", str(log))
    assert (again["added"], again["skipped"], again["failed"]) == (0, 13, 2)  # tried again, not stored
    stopped = _hash(*model, "--db", str(tmp_path / "db2"), str(mixed_inputs), "--engine", "ray",
                    "--on-error", "stop", code=1)
    assert "broken.png" in stopped["output"] or "short.dcm" in stopped["output"]


def test_local_engine_can_skip_too(tmp_path: Path, mixed_inputs: Path, exported: Path) -> None:
    (mixed_inputs / "broken.png").write_bytes(b"not an image")
    model = ("--model", str(exported / "encoder.onnx"))
    refused = _hash(*model, "--db", str(tmp_path / "db"), str(mixed_inputs), code=1)
    assert "broken.png" in refused["output"] and not (tmp_path / "db").exists()  # stop: nothing written
    out = _hash(*model, "--db", str(tmp_path / "db"), str(mixed_inputs), "--on-error", "skip",
                "--failure-log", str(tmp_path / "log.jsonl"))
    assert out["added"] == 13 and out["failed"] == 1


def test_bad_engine_options_are_one_line(tmp_path: Path, exported: Path, mixed_inputs: Path) -> None:
    model = ("--model", str(exported / "encoder.onnx"))
    for extra, message in ((("--engine", "spark"), "--engine must be one of"),
                           (("--address", "auto"), "--address joins a Ray cluster"),
                           (("--on-error", "maybe"), "--on-error must be one of"),
                           (("--since", "2026-01-01"), "--since and --checkpoint are for a PACS")):
        out = _hash(*model, "--db", str(tmp_path / "db"), str(mixed_inputs), *extra, code=1)
        assert message in out["output"] and not (tmp_path / "db").exists()


def test_into_postgresql_as_into_a_folder(tmp_path: Path, mixed_inputs: Path, exported: Path,
                                          pg_url: str) -> None:
    from dnhcli.stores import open_store

    model = ("--model", str(exported / "encoder.onnx"))
    ray = _hash(*model, "--db", pg_url, str(mixed_inputs), "--engine", "ray", "--chunk", "4")
    local = _hash(*model, "--db", str(tmp_path / "local"), str(mixed_inputs))
    assert ray["added"] == local["added"]
    codes, meta = _items(tmp_path / "local")
    with open_store(pg_url) as store:
        ids = store.live_ids()
        assert np.array_equal(store.codes()[ids], codes)
        assert [m["key"] for m in store.metadata(ids)] == [m["key"] for m in meta]


def test_an_unreachable_cluster_is_one_line(tmp_path: Path, exported: Path, mixed_inputs: Path) -> None:
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "dnhcli", "hash", "--model", str(exported / "encoder.onnx"),
                           "--db", str(tmp_path / "db"), str(mixed_inputs), "--engine", "ray",
                           "--address", "127.0.0.1:9"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and "no Ray cluster answers at 127.0.0.1:9" in done.stderr
    assert not (tmp_path / "db").exists()
