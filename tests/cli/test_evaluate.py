from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from dnhcli.cli.app import app

runner = CliRunner()


def test_evaluate_json_has_the_contract_keys(synthetic_dataset: Path, trained_model: Path,
                                             tmp_path: Path) -> None:
    args = ["evaluate", "--model", str(trained_model), "--data", str(synthetic_dataset)]
    result = runner.invoke(app, [*args, "--json", "--dump", str(tmp_path / "dump")])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert {"reference", "strict", "tie_aware", "per_organ", "config", "pr_curve", "codes"} <= set(data)
    for k in (10, 100, 1000):
        assert {f"mAP@{k}", f"nDCG@{k}"} <= set(data["reference"])
        assert {f"mAP@{k}", f"nDCG@{k}", f"P@{k}"} <= set(data["strict"])
    assert "P@r2" in data["strict"]
    assert set(data["per_organ"]) == {"Brain", "Lung", "Cell"}
    assert len(data["pr_curve"]["precision"]) == 17
    assert data["config"]["k"] == [10, 100, 1000] and data["outputs"]["dump"] == str(tmp_path / "dump")
    assert {"two_stage", "instance", "likeness_ratio", "notices"} <= set(data)
    assert {"reference", "strict", "tie_aware", "per_organ", "codes"} <= set(data["two_stage"])
    assert {f"mMV@{k}" for k in (10, 100, 1000)} <= set(data["two_stage"]["strict"])
    assert set(data["instance"]["hamming"]["jpeg"]) == {"recall@1", "recall@10"}
    assert set(data["likeness_ratio"]) == {"k", "sample", "hamming", "two_stage"}
    assert "mean_gallery_tie_size" in data["codes"] and data["config"]["oversample"] == 10

    result = runner.invoke(app, [*args, "-k", "5,20", "--oversample", "3", "--instance-sample", "30"])
    assert result.exit_code == 0, result.output
    assert "@20" in result.stdout and "Per organ" in result.stdout
    assert "Two-stage ranking" in result.stdout and "Instance recall" in result.stdout
    assert "rotate5" in result.stdout and "likeness ratio" in result.stderr

    result = runner.invoke(app, [*args, "--json", "--no-rerank", "--no-instance"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["two_stage"] is None and data["instance"] is None and data["config"]["rerank"] is False


def test_evaluate_errors_are_one_line(synthetic_dataset: Path, trained_model: Path, tmp_path: Path) -> None:
    base = ["evaluate", "--model", str(trained_model), "--data", str(synthetic_dataset)]
    cases = [
        [*base, "-k", "ten"],
        [*base, "-k", "0"],
        [*base, "--tie-break", "random"],
        [*base, "--plot", str(tmp_path / "p.svg")],
        [*base, "--oversample", "0"],
        [*base, "--oversample", "1001"],
        [*base, "--instance-sample", "-1"],
        [*base, "--instance-sample", "0"],
        ["evaluate", "--model", str(tmp_path / "none.pt"), "--data", str(synthetic_dataset)],
        ["evaluate", "--model", str(trained_model), "--data", str(tmp_path)],
    ]
    for args in cases:
        result = runner.invoke(app, args)
        assert result.exit_code in (1, 2), (args, result.output)
        assert "Traceback" not in result.output
        assert len(result.stderr.strip().splitlines()) == 1, (args, result.stderr)
    assert list(tmp_path.iterdir()) == []
