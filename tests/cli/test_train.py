from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from dnhcli.cli.app import app

runner = CliRunner()
FAST = ["--epochs", "2", "--batch-size", "64", "--bits", "16", "--threads", "1"]


def test_train_json_contract(synthetic_dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = runner.invoke(app, ["train", "--data", str(synthetic_dataset), "--out", str(out),
                                 *FAST, "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["checkpoint"] == str(out / "best.pt") and data["epochs"] == 2
    assert data["seconds"] > 0 and 0 <= data["best_metric"] <= 1
    assert {"fragile_fraction", "distinct_codes", "last_epoch"} <= set(data)
    resumed = runner.invoke(app, ["train", "--data", str(synthetic_dataset), "--out", str(out),
                                  *FAST[:-6], "--epochs", "3", "--batch-size", "64", "--bits", "16",
                                  "--resume", "--json"])
    assert resumed.exit_code == 0, resumed.output
    assert json.loads(resumed.stdout)["last_epoch"]["epoch"] == 3


def test_defaults_and_the_reference_preset(synthetic_dataset: Path, tmp_path: Path) -> None:
    from dnhcli.models.checkpoint import load_checkpoint
    from dnhcli.training.config import PRESETS, Hyperparams

    default = runner.invoke(app, ["train", "--data", str(synthetic_dataset), "--out",
                                  str(tmp_path / "default"), "--epochs", "1", "--json"])
    assert default.exit_code == 0, default.output
    facts = load_checkpoint(tmp_path / "default" / "last.pt")
    assert facts["arch"] == "bncnn" and facts["hparams"]["objective"] == "centres"
    assert facts["hparams"] == {**Hyperparams().__dict__, "epochs": 1}
    # the reference is one flag away; options given beside the preset override it
    ref = runner.invoke(app, ["train", "--data", str(synthetic_dataset), "--out", str(tmp_path / "ref"),
                              "--preset", "reference", "--epochs", "1", "--bits", "16", "--json"])
    assert ref.exit_code == 0, ref.output
    hparams = load_checkpoint(tmp_path / "ref" / "last.pt")["hparams"]
    assert hparams == {**Hyperparams().__dict__, **PRESETS["reference"], "epochs": 1, "bits": 16}
    assert hparams["arch"] == "lenet5-dnh" and hparams["objective"] == "dnh"
    assert hparams["classes"] == "organ" and hparams["quantization"] == 0.0


def test_train_table_output(synthetic_dataset: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["train", "--data", str(synthetic_dataset), "--out",
                                 str(tmp_path / "run"), *FAST])
    assert result.exit_code == 0, result.output
    assert "best checkpoint" in result.stdout and "distinct val codes" in result.stdout


def test_train_errors_are_one_line(synthetic_dataset: Path, tmp_path: Path) -> None:
    cases = [
        (["--data", str(tmp_path), "--out", str(tmp_path / "a")], "not a prepared dnh dataset"),
        (["--data", str(synthetic_dataset), "--out", str(tmp_path / "b"), "--bits", "12"],
         "bit length 12 is not supported"),
        (["--data", str(synthetic_dataset), "--out", str(tmp_path / "c"), "--resume"],
         "nothing to resume"),
        (["--data", str(synthetic_dataset), "--out", str(tmp_path / "d"), "--arch", "vit-huge"],
         "unknown model 'vit-huge'"),
        (["--data", str(synthetic_dataset), "--out", str(tmp_path / "e"), "--objective", "csq"],
         "unknown objective 'csq'"),
        (["--data", str(synthetic_dataset), "--out", str(tmp_path / "f"), "--preset", "paper"],
         "unknown preset 'paper'"),
        (["--data", str(synthetic_dataset), "--out", str(tmp_path / "g"), "--sampling", "organs"],
         "--sampling must be one of"),
    ]
    for args, message in cases:
        result = runner.invoke(app, ["train", *args])
        assert result.exit_code == 1, result.output
        assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
        assert "Traceback" not in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == []
