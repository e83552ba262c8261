"""A served database of the synthetic gallery, an in-process client and a live loopback server."""

from __future__ import annotations

import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("fastapi")


@pytest.fixture(scope="module")
def served_db(exported: Path, synthetic_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The synthetic gallery hashed by the exported encoder (stored in the database), plus three
    PNG files, so that thumbnails of both kinds of item can be read back."""
    from PIL import Image

    from dnhcli.retrieval.hashing import HashConfig, hash_into_db

    root = tmp_path_factory.mktemp("served")
    db = root / "db"
    hash_into_db(HashConfig(model=exported / "encoder.xml", db=db, data=synthetic_dataset, split="gallery"))
    pictures = root / "pictures"
    pictures.mkdir()
    for i, image in enumerate(np.load(synthetic_dataset / "query_images.npy")[:3]):
        Image.fromarray(image).resize((64, 64)).save(pictures / f"p{i}.png")
    hash_into_db(HashConfig(model=exported / "encoder.xml", db=db, inputs=(pictures,)))
    return db


@pytest.fixture(scope="module")
def service(served_db: Path) -> Iterator:
    from dnhcli.serve.service import SearchService, ServeConfig

    svc = SearchService(
        ServeConfig(
            db=served_db, threads=1, reload_interval=0.1, max_images=8, max_upload=1 << 20, upload_timeout=1.0
        )
    )
    yield svc
    svc.close()


@pytest.fixture(scope="module")
def client(service) -> Iterator:
    from fastapi.testclient import TestClient

    from dnhcli.serve.app import create_app

    with TestClient(create_app(service=service)) as test_client:
        yield test_client


class LiveServer:
    """uvicorn serving an app on a free loopback port, in a thread of this process."""

    def __init__(self, app) -> None:
        import uvicorn

        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(
            uvicorn.Config(app, log_level="warning", access_log=False, timeout_graceful_shutdown=2)
        )
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 60
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the test server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.sock.close()


@pytest.fixture(scope="module")
def live(service) -> Iterator[LiveServer]:
    from dnhcli.serve.app import create_app

    with LiveServer(create_app(service=service)) as server:
        yield server


@pytest.fixture(scope="module")
def query_png(synthetic_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A query image as a 96 x 96 PNG (the page and the API resize it to the model's side)."""
    from PIL import Image

    path = tmp_path_factory.mktemp("query") / "query.png"
    Image.fromarray(np.load(synthetic_dataset / "query_images.npy")[5]).resize((96, 96)).save(path)
    return path


def chromium() -> str | None:
    """Debian's chromium, if installed."""
    return shutil.which("chromium") or shutil.which("chromium-browser")
