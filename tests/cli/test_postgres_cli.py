"""Every `--db` takes a postgresql:// URL with the same behaviour as a folder."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from dnhcli.cli.app import app

runner = CliRunner()


def _ok(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.stdout


def _hash_gallery(db: str, model: Path, data: Path, *extra: str) -> dict:
    out = _ok("hash", "--model", str(model), "--db", db, "--data", str(data), "--split", "gallery", *extra)
    return json.loads(out) if extra else {}


def _queries(tmp_path: Path, synthetic_dataset: Path) -> Path:
    path = tmp_path / "queries.npy"
    np.save(path, np.load(synthetic_dataset / "query_images.npy")[:6])
    return path


def test_hash_and_search_on_postgresql_equal_a_folder(
    tmp_path: Path, pg_url: str, trained_model: Path, synthetic_dataset: Path
) -> None:
    folder = tmp_path / "db"
    for db in (str(folder), pg_url):
        made = _hash_gallery(db, trained_model, synthetic_dataset, "--json")
        assert made["created"] is True and made["added"] > 0
        again = _hash_gallery(db, trained_model, synthetic_dataset, "--json")
        assert again["added"] == 0 and again["skipped"] == made["added"]  # keys: a rerun adds nothing
    queries = _queries(tmp_path, synthetic_dataset)
    for extra in (
        [],
        ["--radius", "3", "-k", "500"],
        ["--tie-break", "asymmetric"],
        ["--model", str(trained_model)],
    ):  # without --model: the encoder each database stores
        local = json.loads(_ok("search", str(queries), "--db", str(folder), "--json", *extra))["queries"]
        remote = json.loads(_ok("search", str(queries), "--db", pg_url, "--json", *extra))["queries"]
        assert remote == local and local[0]["results"]
    evaluated = [
        json.loads(
            _ok(
                "evaluate",
                "--model",
                str(trained_model),
                "--data",
                str(synthetic_dataset),
                "--db",
                db,
                "--json",
                "-k",
                "10",
            )
        )
        for db in (str(folder), pg_url)
    ]
    assert evaluated[0]["reference"] == evaluated[1]["reference"]


def test_db_commands_on_postgresql(
    tmp_path: Path, pg_url: str, trained_model: Path, synthetic_dataset: Path
) -> None:
    _hash_gallery(pg_url, trained_model, synthetic_dataset)
    info = json.loads(_ok("db", "info", pg_url, "--json"))
    assert info["count"] > 0 and info["bits"] == 16 and info["model"]["stored"] == "encoder.onnx"
    key = json.loads(_ok("search", str(_queries(tmp_path, synthetic_dataset)), "--db", pg_url, "--json"))[
        "queries"
    ][0]["results"][0]["key"]
    deleted = json.loads(_ok("db", "delete", pg_url, "--key", key, "--json"))
    assert deleted["count"] == info["count"] - 1
    assert json.loads(_ok("db", "verify", pg_url, "--json"))["ok"] is True
    _ok("db", "compact", pg_url)
    after = json.loads(
        _ok("search", str(_queries(tmp_path, synthetic_dataset)), "--db", pg_url, "--json", "-k", "1000")
    )
    assert all(hit["key"] != key for q in after["queries"] for hit in q["results"])


@pytest.mark.parametrize(
    ("db", "message"),
    [
        ("http://example.org/db", "unsupported database URL scheme"),
        ("postgresql://u@127.0.0.1:notaport/x", "invalid PostgreSQL URL"),
        ("postgresql://nobody:secret@127.0.0.1:9/x", "cannot connect to PostgreSQL"),
    ],
)
def test_bad_urls_are_one_line_and_never_folders(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    trained_model: Path,
    synthetic_dataset: Path,
    db: str,
    message: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    queries = _queries(tmp_path, synthetic_dataset)
    for args in (
        ["search", str(queries), "--db", db, "--model", str(trained_model)],
        ["hash", str(queries), "--db", db, "--model", str(trained_model)],
        ["db", "info", db],
    ):
        result = runner.invoke(app, args)
        assert result.exit_code == 1, result.output
        assert message in result.output and "Traceback" not in result.output and "secret" not in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["queries.npy"]


def test_a_table_of_other_bits_is_refused(
    tmp_path: Path, pg_url: str, trained_model: Path, synthetic_dataset: Path
) -> None:
    from dnhcli.stores.postgres import PostgresStore

    PostgresStore.create(pg_url, 32, "x").close()
    result = runner.invoke(
        app,
        ["hash", str(_queries(tmp_path, synthetic_dataset)), "--db", pg_url, "--model", str(trained_model)],
    )
    assert result.exit_code == 1 and "32-bit" in result.output


def test_serve_searches_postgresql(
    tmp_path: Path, pg_url: str, trained_model: Path, synthetic_dataset: Path
) -> None:
    pytest.importorskip("fastapi")
    from dnhcli.serve.service import SearchService, ServeConfig

    _hash_gallery(pg_url, trained_model, synthetic_dataset)
    images = np.load(synthetic_dataset / "query_images.npy")[:2]
    service = SearchService(ServeConfig(db=pg_url, reload_interval=0))
    try:
        answers = service.search(images, ["a", "b"], 5)
        assert [len(a["results"]) for a in answers] == [5, 5]
        assert service.health()["db"] == pg_url and service.item(answers[0]["results"][0]["id"])["organ"]
    finally:
        service.close()


def test_db_copy_both_ways_keeps_keys_metadata_and_answers(
    tmp_path: Path, pg_url: str, trained_model: Path, synthetic_dataset: Path
) -> None:
    folder, back = tmp_path / "db", tmp_path / "back"
    _hash_gallery(str(folder), trained_model, synthetic_dataset)
    copied = json.loads(_ok("db", "copy", str(folder), pg_url, "--json"))
    assert copied["renumbered"] is False and copied["count"] > 0
    json.loads(_ok("db", "copy", pg_url, str(back), "--json"))
    queries = _queries(tmp_path, synthetic_dataset)
    answers = [
        json.loads(_ok("search", str(queries), "--db", db, "--json"))["queries"]
        for db in (str(folder), pg_url, str(back))
    ]  # no --model: each stores the encoder
    assert answers[0] == answers[1] == answers[2]
    again = runner.invoke(app, ["db", "copy", str(folder), pg_url])
    assert again.exit_code == 1 and "already exists" in again.output


def test_three_shards_by_the_readme_steps(
    tmp_path: Path, postgres, postgres_shards, trained_model: Path, synthetic_dataset: Path
) -> None:
    coordinator = postgres.database()
    for server in postgres_shards:
        _ok("db", "shard", "add", coordinator, server.database())
    assert len(json.loads(_ok("db", "shard", "list", coordinator, "--json"))["shards"]) == 3
    folder = tmp_path / "db"
    for db in (str(folder), coordinator):
        _hash_gallery(db, trained_model, synthetic_dataset)
    queries = _queries(tmp_path, synthetic_dataset)
    for extra in ([], ["--radius", "2", "-k", "300"]):
        local = json.loads(_ok("search", str(queries), "--db", str(folder), "--json", *extra))["queries"]
        remote = json.loads(_ok("search", str(queries), "--db", coordinator, "--json", *extra))["queries"]
        assert remote == local
    assert len(json.loads(_ok("db", "info", coordinator, "--json"))["shards"]) == 3


def test_serve_follows_appends_to_postgresql(
    pg_url: str, trained_model: Path, synthetic_dataset: Path
) -> None:
    pytest.importorskip("fastapi")
    import time

    from dnhcli.serve.service import SearchService, ServeConfig
    from dnhcli.stores.postgres import PostgresStore

    _hash_gallery(pg_url, trained_model, synthetic_dataset)
    service = SearchService(ServeConfig(db=pg_url, reload_interval=0.05))
    try:
        before = service.health()["count"]
        with PostgresStore.open(pg_url) as store:
            store.add(np.zeros((3, 2), np.uint8), [{"source": f"new{i}"} for i in range(3)],
                      np.ones((3, 16), np.int8))
        deadline = time.monotonic() + 20
        while service.health()["count"] != before + 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert service.health()["count"] == before + 3
        assert service.item(before + 2)["source"] == "new2"
    finally:
        service.close()
