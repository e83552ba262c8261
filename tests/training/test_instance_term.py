"""Training with the instance term: the two-view path, the code-spread report (distinct codes
and mean tie size of train and val codes) and validation of the new settings."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from dnhcli.errors import InputError
from dnhcli.index.codes import mean_tie_size
from dnhcli.training import views
from dnhcli.training.config import PRESETS, Hyperparams, TrainConfig, preset
from dnhcli.training.trainer import train

SMALL = {"epochs": 2, "batch_size": 64, "bits": 16, "seed": 4}


def test_mean_tie_size_by_hand() -> None:
    codes = np.array([[1], [1], [1], [2], [3]], np.uint8)   # ties of 3, 3, 3, 1, 1
    assert mean_tie_size(codes) == pytest.approx((3 * 3 + 1 + 1) / 5)
    assert mean_tie_size(np.arange(4, dtype=np.uint8)[:, None]) == 1.0
    assert mean_tie_size(np.zeros((4, 6), np.uint8)) == 4.0
    assert mean_tie_size(np.zeros((0, 6), np.uint8)) == 0.0


def test_instance_training_reports_code_spread(synthetic_dataset: Path, tmp_path: Path) -> None:
    result = train(TrainConfig(data=synthetic_dataset, out=tmp_path / "run", threads=1,
                               hparams=Hyperparams(instance_weight=1.0, instance_balance=0.1, **SMALL)))
    last = result.history[-1]
    assert all(row.loss_instance > 0 for row in result.history)
    codes = result.to_json()["codes"]
    assert codes["epoch"] == 2
    for split, count in (("train", last.train_distinct_codes), ("val", last.distinct_codes)):
        assert codes[split]["distinct"] == count and count >= 1
        assert codes[split]["mean_tie"] >= 1.0
    with open(tmp_path / "run" / "summary.csv") as handle:
        row = list(csv.DictReader(handle))[-1]
    assert float(row["train_mean_tie"]) == last.train_mean_tie and float(row["loss_instance"]) > 0


def test_without_the_instance_term_no_views_are_drawn(synthetic_dataset: Path, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("two views drawn with instance_weight 0")

    monkeypatch.setattr(views, "two_views", refuse)
    result = train(TrainConfig(data=synthetic_dataset, out=tmp_path / "run", threads=1,
                               hparams=Hyperparams(instance_weight=0.0, **SMALL)))
    assert all(row.loss_instance == 0 for row in result.history)
    assert result.to_json()["codes"]["val"]["mean_tie"] >= 1


def test_defaults_and_reference_preset() -> None:
    assert Hyperparams().instance_weight > 0 and Hyperparams().instance_temperature == 0.3
    assert preset("reference").instance_weight == 0 == PRESETS["reference"]["instance_weight"]
    assert preset("reference").instance_balance == 0


@pytest.mark.parametrize(("changes", "message"), [
    ({"instance_weight": -1.0}, "--instance-weight must be zero or positive"),
    ({"instance_weight": float("nan")}, "--instance-weight must be zero or positive"),
    ({"instance_balance": -0.5}, "--instance-balance must be zero or positive"),
    ({"instance_temperature": 0.0}, "--instance-temperature must be between"),
    ({"instance_temperature": float("inf")}, "--instance-temperature must be between"),
])
def test_bad_instance_settings_are_refused(changes: dict[str, float], message: str) -> None:
    with pytest.raises(InputError, match=message):
        Hyperparams(**changes).check()
