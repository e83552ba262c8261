"""`dnh serve` as a user runs it: a process on loopback answering the API, one-line errors."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dnhcli.cli.app import app

pytest.importorskip("fastapi")
runner = CliRunner()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _get(url: str, data: bytes | None = None, headers: dict[str, str] | None = None) -> dict:
    request = urllib.request.Request(url, data=data, headers=headers or {})
    with urllib.request.urlopen(request, timeout=30) as answer:
        return json.loads(answer.read())


@pytest.fixture(scope="module")
def db(trained_model: Path, synthetic_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("serve") / "db"
    result = runner.invoke(
        app,
        [
            "hash",
            "--model",
            str(trained_model),
            "--db",
            str(out),
            "--data",
            str(synthetic_dataset),
            "--split",
            "gallery",
        ],
    )
    assert result.exit_code == 0, result.output
    return out


@pytest.mark.parametrize("workers", [1, 2])
def test_serve_answers_on_loopback(db: Path, synthetic_dataset: Path, tmp_path: Path, workers: int) -> None:
    import numpy as np

    port = _free_port()
    query = tmp_path / "q.npy"
    np.save(query, np.load(synthetic_dataset / "query_images.npy")[0])
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dnhcli",
            "serve",
            "--db",
            str(db),
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--threads",
            "1",
            "--no-access-log",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        deadline, health = time.monotonic() + 120, None
        while health is None and time.monotonic() < deadline and proc.poll() is None:
            try:
                health = _get(f"http://127.0.0.1:{port}/health")
            except OSError:
                time.sleep(0.2)
        assert health is not None, proc.stdout.read() if proc.poll() is not None else "no answer"
        assert health["count"] == len(np.load(synthetic_dataset / "gallery_images.npy"))
        boundary = "b0undary"
        body = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="q.npy"\r\n\r\n'.encode()
            + query.read_bytes()
            + f"\r\n--{boundary}--\r\n".encode()
        )
        for _ in range(2 * workers):
            answer = _get(
                f"http://127.0.0.1:{port}/search?k=5",
                body,
                {"Content-Type": f"multipart/form-data; boundary={boundary}"},
            )
            assert answer["query"] == "q.npy" and len(answer["results"]) == 5
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            output = proc.communicate(timeout=30)[0]
        except subprocess.TimeoutExpired:
            proc.kill()
            output = proc.communicate()[0]
    assert f"http://127.0.0.1:{port}" in output
    assert "Traceback" not in output


def test_serve_refuses_a_missing_database_in_one_line(tmp_path: Path) -> None:
    result = runner.invoke(app, ["serve", "--db", str(tmp_path / "nowhere")])
    assert result.exit_code == 1
    assert "hash database not found" in result.output and "Traceback" not in result.output


def test_serve_refuses_a_model_of_other_bits(db: Path, exported: Path, tmp_path: Path) -> None:
    from dnhcli.stores.hashdb import HashDB

    other = tmp_path / "db32"
    HashDB.create(other, bits=32, model_fingerprint="x").close()
    result = runner.invoke(app, ["serve", "--db", str(other), "--model", str(exported / "encoder.xml")])
    assert result.exit_code == 1 and "32-bit" in result.output
