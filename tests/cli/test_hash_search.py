from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from dnhcli.cli.app import app
from dnhcli.data.dataset import PreparedDataset

runner = CliRunner()


def test_hash_then_search_json_table_and_montage(synthetic_dataset: Path, trained_model: Path,
                                                 tmp_path: Path) -> None:
    db = tmp_path / "db"
    result = runner.invoke(app, ["hash", "--model", str(trained_model), "--db", str(db),
                                 "--data", str(synthetic_dataset), "--split", "gallery", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    gallery = len(PreparedDataset.open(synthetic_dataset).split("gallery"))
    assert data == {"db": str(db), "count": gallery, "added": gallery, "skipped": 0, "replaced": 0,
                    "bits": 16, "created": True, "failed": 0, "failed_keys": [], "failure_log": None,
                    "engine": "local"}

    query = np.asarray(PreparedDataset.open(synthetic_dataset).split("query").images[0])
    np.save(tmp_path / "query.npy", query)
    args = ["search", str(tmp_path / "query.npy"), "--model", str(trained_model), "--db", str(db)]
    result = runner.invoke(app, [*args, "-k", "3", "--json"])
    assert result.exit_code == 0, result.output
    found = json.loads(result.stdout)["queries"]
    assert len(found) == 1 and found[0]["query"].endswith("query.npy")
    hits = found[0]["results"]
    assert [h["rank"] for h in hits] == [1, 2, 3]
    assert {"rank", "distance", "id", "source", "organ", "disease"} <= set(hits[0])
    assert [h["distance"] for h in hits] == sorted(h["distance"] for h in hits)

    montage = tmp_path / "out" / "montage.png"
    result = runner.invoke(app, [*args, "--montage", str(montage)])
    assert result.exit_code == 0, result.output
    assert "distance" in result.stdout and montage.is_file()


def test_search_errors_are_one_line(synthetic_dataset: Path, trained_model: Path,
                                    tmp_path: Path) -> None:
    db = tmp_path / "db"
    assert runner.invoke(app, ["hash", "--model", str(trained_model), "--db", str(db),
                               "--data", str(synthetic_dataset)]).exit_code == 0
    np.save(tmp_path / "wrong.npy", np.zeros((3, 4), np.float32))
    np.save(tmp_path / "nan.npy", np.full((28, 28), np.nan, np.float32))
    cases = [
        (["search", str(tmp_path / "wrong.npy"), "--model", str(trained_model), "--db", str(db)],
         "too small to hash"),
        (["search", str(tmp_path / "nan.npy"), "--model", str(trained_model), "--db", str(db)],
         "NaN"),
        (["search", str(tmp_path / "wrong.npy"), "--model", str(tmp_path / "no.pt"), "--db", str(db)],
         "model not found"),
        (["hash", str(tmp_path / "missing.npy"), "--model", str(trained_model), "--db", str(db)],
         "input not found"),
    ]
    for args, message in cases:
        result = runner.invoke(app, args)
        assert result.exit_code == 1, (args, result.output)
        assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
        assert "Traceback" not in result.output


def test_chunked_hash_and_streamed_search_give_the_same_answers(synthetic_dataset: Path,
                                                                 trained_model: Path, tmp_path: Path) -> None:
    from dnhcli.stores.hashdb import HashDB

    model = ["--model", str(trained_model)]
    whole, chunked = tmp_path / "whole", tmp_path / "chunked"
    for db, extra in ((whole, []), (chunked, ["--chunk", "7"])):
        done = runner.invoke(app, ["hash", *model, "--db", str(db), "--data", str(synthetic_dataset), *extra])
        assert done.exit_code == 0, done.output
    with HashDB.open(whole) as a, HashDB.open(chunked) as b:
        assert np.array_equal(a.codes(), b.codes()) and a.metadata(range(len(a))) == b.metadata(range(len(b)))
        assert b.segment_count > a.segment_count  # one crash-safe append per chunk (then compacted)
    queries = np.asarray(PreparedDataset.open(synthetic_dataset).split("query").images[:11])
    np.save(tmp_path / "q.npy", queries)
    args = ["search", str(tmp_path / "q.npy"), *model, "--db", str(whole), "-k", "4", "--json"]
    reports = [json.loads(runner.invoke(app, [*args, *extra]).stdout) for extra in ([], ["--chunk", "3"])]
    scores = []
    for report in reports:
        report.pop("seconds")
        # encoded in batches of another size, a query's h moves by ~1e-7: scores agree to 1e-5
        scores.append([hit.pop("score") for q in report["queries"] for hit in q["results"]])
    assert np.allclose(scores[0], scores[1], atol=1e-5) and reports[0]["rerank"] is True
    assert reports[0] == reports[1] and len(reports[0]["queries"]) == 11
    assert reports[0]["k"] == 4 and reports[0]["bits"] == 16
    bad = runner.invoke(app, ["search", str(tmp_path / "q.npy"), str(tmp_path / "missing.npy"), *model,
                              "--db", str(whole), "--json"])
    assert bad.exit_code == 1 and bad.stdout == ""  # checked before the first result is printed
