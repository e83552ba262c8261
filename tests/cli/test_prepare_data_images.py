"""`dnh prepare-data --images`: the command line of a folder of one's own images, then
`dnh train` on what it wrote."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from dnhcli.cli.app import app

runner = CliRunner()


def _tree(root: Path, per_class: int = 10) -> Path:
    from PIL import Image

    for c, name in enumerate(("benign", "malignant")):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            rng = np.random.default_rng(100 * c + i)
            pixels = np.clip(rng.normal(60 + 120 * c, 25, (36, 36)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(root / name / f"{i}.png")
    return root


def test_help_lists_the_image_options() -> None:
    result = runner.invoke(app, ["prepare-data", "--help"])
    assert result.exit_code == 0
    assert all(flag in result.output for flag in ("--images", "--labels", "--label-tag", "--on-error"))


def test_class_folders_then_train_one_epoch(tmp_path: Path) -> None:
    out = tmp_path / "ds"
    result = runner.invoke(app, ["prepare-data", "--images", str(_tree(tmp_path / "images")),
                                 "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert {"out", "splits", "classes", "seed", "fingerprint"} <= set(data)  # the keys of before stay
    assert data["classes"] == {"benign": 10, "malignant": 10} and data["labels"] == "folders"
    assert data["labelled"] and data["skipped"] == [] and (out / "train_keys.npy").is_file()
    trained = runner.invoke(app, ["train", "--data", str(out), "--out", str(tmp_path / "run"),
                                  "--epochs", "1", "--bits", "16", "--threads", "1", "--json"])
    assert trained.exit_code == 0, trained.output
    assert (tmp_path / "run" / "best.pt").is_file()


def test_table_output_names_the_label_source(tmp_path: Path) -> None:
    result = runner.invoke(app, ["prepare-data", "--images", str(_tree(tmp_path / "images")),
                                 "--out", str(tmp_path / "ds")])
    assert result.exit_code == 0, result.output
    assert "malignant" in result.stdout and "labels: folders" in result.stderr


def test_skip_lists_the_file_left_out(tmp_path: Path) -> None:
    root = _tree(tmp_path / "images")
    (root / "benign" / "broken.png").write_bytes(b"nope")
    result = runner.invoke(app, ["prepare-data", "--images", str(root), "--out", str(tmp_path / "ds"),
                                 "--on-error", "skip", "--json"])
    assert result.exit_code == 0, result.output
    skipped = json.loads(result.stdout)["skipped"]
    assert len(skipped) == 1 and skipped[0]["source"].endswith("broken.png")


@pytest.mark.parametrize("extra,message", [
    (["--synthetic"], "--images and --synthetic exclude each other"),
    (["--subsets", "breast"], "--images and --subsets exclude each other"),
    (["--layout", "class", "--label-tag", "Modality"], "exclude each other"),
    (["--on-error", "maybe"], "--on-error takes stop or skip"),
    (["--layout", "deep"], "--layout takes"),
    ([], "broken.png: "),
    (["--layout", "class"], "stray.png: no label"),
])
def test_bad_input_is_one_line_and_leaves_no_folder(tmp_path: Path, extra: list[str], message: str) -> None:
    root = _tree(tmp_path / "images")
    if extra == []:
        (root / "benign" / "broken.png").write_bytes(b"nope")
    if "class" in extra and "--label-tag" not in extra:
        (root / "stray.png").write_bytes((root / "benign" / "0.png").read_bytes())
    out = tmp_path / "ds"
    result = runner.invoke(app, ["prepare-data", "--images", str(root), "--out", str(out), *extra])
    assert result.exit_code == 1, result.output
    assert message in result.stderr and result.stderr.startswith("error: ")
    assert len(result.stderr.strip().splitlines()) == 1 and result.stdout == ""
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["images"]


def test_image_options_need_images(tmp_path: Path) -> None:
    result = runner.invoke(app, ["prepare-data", "--synthetic", "--label-tag", "Modality",
                                 "--out", str(tmp_path / "ds")])
    assert result.exit_code == 1 and "--label-tag applies to --images only" in result.stderr


def test_an_unlabelled_set_is_prepared_and_train_refuses_it_in_one_line(tmp_path: Path) -> None:
    root = _tree(tmp_path / "images")
    out = tmp_path / "ds"
    result = runner.invoke(app, ["prepare-data", "--images", str(root), "--layout", "none",
                                 "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["labelled"] is False and data["classes"] == {} and sum(data["splits"].values()) == 20
    trained = runner.invoke(app, ["train", "--data", str(out), "--out", str(tmp_path / "run"),
                                  "--epochs", "1", "--bits", "16", "--threads", "1"])
    assert trained.exit_code == 1 and "holds unlabelled images" in trained.stderr
    assert len(trained.stderr.strip().splitlines()) == 1


def test_a_database_hashed_from_the_folder_is_evaluated_by_its_file_keys(tmp_path: Path) -> None:
    """`dnh hash --data` keys a folder's items as `dnh hash DIR` does, and `dnh evaluate --db` finds
    them by those keys (so it can alter the stored images and report instance recall)."""
    out, run, db = tmp_path / "ds", tmp_path / "run", tmp_path / "db"
    root = _tree(tmp_path / "images", per_class=12)
    assert runner.invoke(app, ["prepare-data", "--images", str(root), "--out", str(out)]).exit_code == 0
    assert runner.invoke(app, ["train", "--data", str(out), "--out", str(run), "--epochs", "1",
                               "--bits", "16", "--threads", "1"]).exit_code == 0
    hashed = runner.invoke(app, ["hash", "--model", str(run / "best.pt"), "--db", str(db), "--data", str(out),
                                 "--split", "gallery"])
    assert hashed.exit_code == 0, hashed.output
    result = runner.invoke(app, ["evaluate", "--model", str(run / "best.pt"), "--data", str(out),
                                 "--db", str(db), "-k", "1,2", "--instance-sample", "4", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["instance"] is not None and report["instance"]["two_stage"]["exact"]["recall@1"] > 0
