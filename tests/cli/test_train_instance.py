"""`dnh train` with the instance term: the new flags, the code-spread keys of --json and the
table, and one-line errors for bad values."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dnhcli.cli.app import app
from dnhcli.models.checkpoint import load_checkpoint

runner = CliRunner()
FAST = ["--epochs", "1", "--batch-size", "64", "--bits", "16", "--threads", "1"]


def test_instance_flags_json_and_table(synthetic_dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = runner.invoke(app, ["train", "--data", str(synthetic_dataset), "--out", str(out), *FAST,
                                 "--instance-weight", "0.5", "--instance-temperature", "0.2", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert {"fragile_fraction", "distinct_codes", "last_epoch"} <= set(data)  # the old contract
    codes = data["codes"]
    assert codes["epoch"] == 1 and codes["val"]["distinct"] == data["distinct_codes"]
    assert codes["train"]["distinct"] >= 1 and codes["train"]["mean_tie"] >= 1
    assert data["last_epoch"]["loss_instance"] > 0
    hparams = load_checkpoint(out / "last.pt")["hparams"]
    assert hparams["instance_weight"] == 0.5 and hparams["instance_temperature"] == 0.2
    table = runner.invoke(app, ["train", "--data", str(synthetic_dataset), "--out", str(out), *FAST,
                                "--instance-weight", "0", "--force"])
    assert table.exit_code == 0, table.output
    assert "train codes" in table.stdout and "mean tie size" in table.stdout


def test_reference_preset_keeps_the_instance_term_off(synthetic_dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "ref"
    result = runner.invoke(app, ["train", "--data", str(synthetic_dataset), "--out", str(out),
                                 "--preset", "reference", *FAST, "--json"])
    assert result.exit_code == 0, result.output
    assert load_checkpoint(out / "last.pt")["hparams"]["instance_weight"] == 0.0
    assert json.loads(result.stdout)["last_epoch"]["loss_instance"] == 0.0


@pytest.mark.parametrize(("args", "message"), [
    (["--instance-weight", "-1"], "--instance-weight must be zero or positive"),
    (["--instance-temperature", "0"], "--instance-temperature must be between 0.01 and 10"),
    (["--instance-balance", "-0.1"], "--instance-balance must be zero or positive"),
])
def test_bad_instance_flags_are_one_line_errors(synthetic_dataset: Path, tmp_path: Path,
                                                args: list[str], message: str) -> None:
    result = runner.invoke(app, ["train", "--data", str(synthetic_dataset), "--out",
                                 str(tmp_path / "x"), *args])
    assert result.exit_code == 1, result.output
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "x").exists()
