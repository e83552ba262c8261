from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dnhcli import __version__
from dnhcli.cli.app import app

runner = CliRunner()


def test_version_and_help() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.strip() == f"dnh {__version__}"
    result = runner.invoke(app, ["prepare-data", "--help"])
    assert result.exit_code == 0 and "--synthetic" in result.output


def test_json_output_is_one_document_on_stdout(tmp_path: Path) -> None:
    out = tmp_path / "ds"
    result = runner.invoke(app, ["prepare-data", "--synthetic", "--synthetic-per-class", "20",
                                 "--out", str(out), "--seed", "2", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["out"] == str(out)
    assert data["splits"] == {"train": 96, "val": 16, "gallery": 32, "query": 16}
    assert data["classes"]["Lung_effusion"] == 20 and len(data["classes"]) == 8
    assert data["seed"] == 2 and len(data["fingerprint"]) == 64
    assert (out / "manifest.json").is_file() and (out / "query_images.npy").is_file()


def test_table_output(tmp_path: Path) -> None:
    result = runner.invoke(app, ["prepare-data", "--synthetic", "--synthetic-per-class", "10",
                                 "--out", str(tmp_path / "ds")])
    assert result.exit_code == 0
    assert "Brain_tumor" in result.stdout and "gallery" in result.stdout


def test_root_from_environment(fake_root: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["prepare-data", "--subsets", "breast,chest", "--out",
                                 str(tmp_path / "ds"), "--json"],
                           env={"DNH_MEDMNIST_ROOT": str(fake_root)})
    assert result.exit_code == 0, result.output
    assert "Chest_normal" in json.loads(result.stdout)["classes"]


@pytest.mark.parametrize("args,message", [
    (["--subsets", "breast,nope"], "unknown MedMNIST subset 'nope'"),
    (["--subsets", "breast", "--ratios", "6:1:2"], "malformed --ratios"),
    (["--subsets", "breast", "--root", "{missing}"], "MedMNIST file not found"),
    (["--synthetic", "--subsets", "breast"], "exclude each other"),
])
def test_bad_input_is_one_line_exit_1_and_writes_nothing(tmp_path: Path, args: list[str],
                                                         message: str) -> None:
    out = tmp_path / "ds"
    args = [a.replace("{missing}", str(tmp_path / "missing")) for a in args]
    result = runner.invoke(app, ["prepare-data", "--out", str(out), *args])
    assert result.exit_code == 1
    assert message in result.stderr
    assert result.stderr.startswith("error: ")
    assert "Traceback" not in result.output and result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1
    assert not out.exists()


def test_non_empty_output_needs_force(tmp_path: Path) -> None:
    out = tmp_path / "ds"
    base = ["prepare-data", "--synthetic", "--synthetic-per-class", "10", "--out", str(out)]
    assert runner.invoke(app, base).exit_code == 0
    result = runner.invoke(app, base)
    assert result.exit_code == 1 and "--force" in result.stderr
    assert runner.invoke(app, [*base, "--force"]).exit_code == 0


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    result = runner.invoke(app, ["prepare-data", "--out", str(tmp_path), "--max-per-class", "0"])
    assert result.exit_code == 2


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    result = runner.invoke(app, ["prepare-data", "--out", str(tmp_path / "x"),
                                 "--subsets", "nope"], env={"DNH_DEBUG": "1"})
    assert result.exit_code == 1
    assert result.exception is not None and type(result.exception).__name__ == "InputError"
