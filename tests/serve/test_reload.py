"""The service follows a database that other processes append to, delete from or rebuild."""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pytest


@pytest.fixture
def copy(served_db: Path, tmp_path: Path) -> Path:
    db = tmp_path / "db"
    shutil.copytree(served_db, db)
    return db


def _app(db: Path, interval: float = 0.05):
    from fastapi.testclient import TestClient

    from dnhcli.serve.app import create_app
    from dnhcli.serve.service import SearchService, ServeConfig

    service = SearchService(ServeConfig(db=db, threads=1, reload_interval=interval))
    return service, TestClient(create_app(service=service))


def _append(db: Path, count: int, seed: int) -> None:
    from dnhcli.stores.hashdb import HashDB

    rng = np.random.default_rng(seed)
    codes = rng.integers(0, 256, (count, 2), dtype=np.uint8)
    vectors = rng.integers(-127, 128, (count, 16), dtype=np.int8)
    with HashDB.open(db) as handle:
        handle.add(
            codes, [{"source": f"appended-{seed}-{i}", "organ": "X", "disease": "y"} for i in range(count)],
            vectors,
        )


def _wait_for(check, seconds: float = 20.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return False


def test_appends_by_another_writer_are_picked_up(copy: Path, query_png: Path) -> None:
    service, client = _app(copy)
    with client:
        before = client.get("/health").json()["count"]
        _append(copy, 30, seed=1)
        assert _wait_for(lambda: client.get("/health").json()["count"] == before + 30)
        hit = client.get(f"/items/{before + 29}").json()
        assert hit["source"] == "appended-1-29"
        assert client.post("/reload").json()["reloaded"] is True  # forced: a new snapshot
    service.close()


def test_searches_during_appends_never_see_a_torn_one(copy: Path, query_png: Path) -> None:
    service, client = _app(copy, interval=0.01)
    data = query_png.read_bytes()
    with client:
        start = client.get("/health").json()["count"]
        writer = threading.Thread(target=lambda: [_append(copy, 40, seed=s) for s in range(2, 8)])
        writer.start()
        answers = []
        while writer.is_alive() or len(answers) < 20:
            response = client.post("/search", params={"k": 60}, files={"image": ("q.png", data)})
            assert response.status_code == 200, response.text
            answers.append(response.json()["results"])
            if len(answers) > 400:
                break
        writer.join()
        final = start + 6 * 40
        assert _wait_for(lambda: client.get("/health").json()["count"] == final)
        for results in answers:
            ranked = [-hit["score"] for hit in results]  # two-stage: by score, then distance and id
            assert ranked == sorted(ranked) and min(60, start) <= len(results) <= 60
            assert all(0 <= hit["id"] < final and hit["source"] for hit in results)
    service.close()


def test_deletions_by_another_process_take_effect(copy: Path) -> None:
    from dnhcli.stores.hashdb import HashDB

    service, client = _app(copy)
    with client:
        assert client.get("/items/3").status_code == 200
        with HashDB.open(copy) as handle:
            handle.delete([3])
        assert _wait_for(lambda: client.get("/items/3").status_code == 404)
    service.close()


def test_a_rebuilt_database_of_another_model_is_refused_and_the_old_one_served(
    copy: Path, query_png: Path
) -> None:
    from dnhcli.stores.hashdb import HashDB

    service, client = _app(copy, interval=0)
    with client:
        count = client.get("/health").json()["count"]
        shutil.rmtree(copy)
        HashDB.create(copy, bits=32, model_fingerprint="another").close()
        refused = client.post("/reload")
        assert refused.status_code == 409 and "32-bit" in refused.json()["error"]
        health = client.get("/health").json()
        assert health["ok"] is False and health["count"] == count and "32-bit" in health["reload_error"]
        still = client.post("/search", files={"image": ("q.png", query_png.read_bytes())})
        assert still.status_code == 200 and len(still.json()["results"]) == 10
    service.close()
