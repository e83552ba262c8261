"""The HTTP API answers as `dnh search --json` does, and serves items, thumbnails and health."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest

from dnhcli.retrieval.query import SearchConfig, search


def _cli_queries(
    db: Path, paths: list[Path], k: int = 10, radius: int | None = None, tie_break: str = "insertion-order"
) -> list[dict]:
    result = search(
        SearchConfig(model=None, db=db, queries=tuple(paths), k=k, radius=radius, tie_break=tie_break)
    )
    return [{"query": q.query, "results": q.results} for q in result.queries]


@pytest.mark.parametrize(
    "params", [{"k": 10}, {"k": 3}, {"k": 50, "radius": 2}, {"k": 7, "tie_break": "asymmetric"}]
)
def test_search_answers_as_the_command_line(client, served_db: Path, query_png: Path, params: dict) -> None:
    with open(query_png, "rb") as handle:
        response = client.post("/search", params=params, files={"image": ("query.png", handle, "image/png")})
    assert response.status_code == 200, response.text
    body = response.json()
    expected = _cli_queries(
        served_db, [query_png], params["k"], params.get("radius"), params.get("tie_break", "insertion-order")
    )[0]
    assert set(body) == {"query", "results"}
    assert body["query"] == "query.png"
    assert body["results"] == expected["results"]
    assert 0 < len(body["results"]) <= params["k"]
    if "radius" in params:
        assert all(hit["distance"] <= params["radius"] for hit in body["results"])


def test_search_takes_dicom_npy_and_a_raw_body(
    client, served_db: Path, tmp_path: Path, dicom_writer, synthetic_dataset: Path
) -> None:
    image = np.load(synthetic_dataset / "query_images.npy")[7]
    dicom = dicom_writer(tmp_path / "q.dcm", image)
    npy = tmp_path / "q.npy"
    np.save(npy, image)
    expected = _cli_queries(served_db, [dicom, npy])
    for path, want in zip((dicom, npy), expected):
        sent = client.post("/search", files={"image": (path.name, path.read_bytes())})
        assert sent.json()["results"] == want["results"]
    raw = client.post(
        "/search",
        params={"name": "scan.dcm"},
        content=dicom.read_bytes(),
        headers={"Content-Type": "application/dicom"},
    )
    assert raw.status_code == 200 and raw.json()["query"] == "scan.dcm"
    assert raw.json()["results"] == expected[0]["results"]


def test_preview_is_the_model_input_as_png(client, query_png: Path) -> None:
    from PIL import Image

    body = client.post(
        "/search", params={"preview": "true"}, files={"image": ("q.png", query_png.read_bytes())}
    ).json()
    assert body["preview"].startswith("data:image/png;base64,")
    import base64

    picture = Image.open(io.BytesIO(base64.b64decode(body["preview"].split(",", 1)[1])))
    assert picture.size == (28, 28)


def test_batch_gives_one_query_per_image(
    client, served_db: Path, tmp_path: Path, synthetic_dataset: Path, query_png: Path
) -> None:
    stack = tmp_path / "stack.npy"
    np.save(stack, np.load(synthetic_dataset / "query_images.npy")[:3])
    response = client.post(
        "/search/batch",
        params={"k": 4},
        files=[
            ("images", ("stack.npy", stack.read_bytes())),
            ("images", ("query.png", query_png.read_bytes())),
        ],
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert [q["query"] for q in body["queries"]] == [
        "stack.npy[0]",
        "stack.npy[1]",
        "stack.npy[2]",
        "query.png",
    ]
    expected = _cli_queries(served_db, [stack, query_png], k=4)
    assert [q["results"] for q in body["queries"]] == [q["results"] for q in expected]
    assert body["bits"] == 16 and body["k"] == 4 and body["radius"] is None


def test_queries_arriving_together_get_their_own_answers(service, client, synthetic_dataset: Path) -> None:
    """Many submissions at once are ranked in shared rounds; each keeps its own k and radius."""
    images = np.load(synthetic_dataset / "query_images.npy")[:24]
    asks = [(1 + i % 5, None if i % 3 else 3) for i in range(len(images))]
    futures = [service.submit(images[i : i + 1], [f"q{i}"], k, radius) for i, (k, radius) in enumerate(asks)]
    answers = [f.result(timeout=60)[0] for f in futures]
    for i, ((k, radius), answer) in enumerate(zip(asks, answers)):
        alone = service.search(images[i : i + 1], [f"q{i}"], k, radius)[0]
        assert answer == alone and len(answer["results"]) <= k


def test_items_thumbnails_and_health(client, service) -> None:
    from PIL import Image

    health = client.get("/health").json()
    assert health["ok"] is True and health["bits"] == 16 and health["count"] == service.health()["count"]
    assert health["model_fingerprint"] == service.backend.fingerprint
    item = client.get("/items/0").json()
    assert item["id"] == 0 and item["source"] == "gallery[0]" and item["organ"]
    for ident in (0, health["count"] - 1):  # a dataset item and a PNG file item
        picture = client.get(f"/items/{ident}/thumbnail.png", params={"size": 56})
        assert picture.status_code == 200 and picture.headers["content-type"] == "image/png"
        assert Image.open(io.BytesIO(picture.content)).size == (56, 56)
    missing = client.get(f"/items/{health['count']}")
    assert missing.status_code == 404 and missing.json()["error"].startswith("no item")


def test_thumbnail_of_a_moved_source_is_404(served_db: Path, tmp_path: Path) -> None:
    import shutil

    from fastapi.testclient import TestClient

    from dnhcli.serve.app import create_app
    from dnhcli.serve.service import SearchService, ServeConfig

    db = tmp_path / "db"
    shutil.copytree(served_db, db)
    svc = SearchService(ServeConfig(db=db, reload_interval=0))
    last = svc.health()["count"] - 1
    moved = Path(svc.item(last)["file"])
    with TestClient(create_app(service=svc)) as client:
        backup = moved.read_bytes()
        moved.unlink()
        try:
            response = client.get(f"/items/{last}/thumbnail.png")
        finally:
            moved.write_bytes(backup)
    svc.close()
    assert response.status_code == 404 and "cannot be read" in response.json()["error"]


def test_page_static_files_and_openapi(client) -> None:
    page = client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert '<script src="/static/app.js">' in page.text and "http" not in page.text.split("<body>")[1]
    assert client.get("/static/app.js").headers["content-type"].startswith("text/javascript")
    assert client.get("/static/style.css").status_code == 200
    assert client.get("/static/index.html").status_code == 404
    routes = client.get("/openapi.json").json()["paths"]
    assert {
        "/search",
        "/search/batch",
        "/items/{item}",
        "/items/{item}/thumbnail.png",
        "/health",
        "/reload",
    } <= set(routes)
    assert "image" in json.dumps(routes["/search"]["post"]["requestBody"])
    assert client.get("/docs").status_code == 200


def test_uploads_never_touch_the_disk(
    served_db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A large upload (above the 1 MB at which form parsers spool files to disk) stays in memory:
    the temporary folder stays empty, and so does the database folder."""
    import tempfile

    from fastapi.testclient import TestClient
    from PIL import Image

    from dnhcli.serve.app import create_app
    from dnhcli.serve.service import SearchService, ServeConfig

    spool = tmp_path / "tmp"
    spool.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(spool))
    for name in ("TemporaryFile", "NamedTemporaryFile", "mkstemp", "mkdtemp"):
        monkeypatch.setattr(tempfile, name, lambda *a, **kw: pytest.fail("an upload went to a file"))
    before = sorted((p.name, p.stat().st_size) for p in served_db.iterdir())
    noise = np.random.default_rng(0).integers(0, 256, (1200, 1200), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(noise).save(out, "BMP")  # 1.4 MB
    svc = SearchService(ServeConfig(db=served_db, reload_interval=0, max_upload=4 << 20))
    with TestClient(create_app(service=svc)) as client:
        response = client.post("/search", files={"image": ("big.bmp", out.getvalue())})
    svc.close()
    assert response.status_code == 200, response.text
    assert list(spool.iterdir()) == []
    assert sorted((p.name, p.stat().st_size) for p in served_db.iterdir()) == before
