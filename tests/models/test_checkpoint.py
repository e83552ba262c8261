from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch

from dnhcli.errors import ModelError
from dnhcli.models.checkpoint import load_checkpoint, model_from_checkpoint, save_checkpoint


class Evil:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (print, ("code ran",))


def test_missing_garbage_and_pickled_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="not found"):
        load_checkpoint(tmp_path / "none.pt")
    (tmp_path / "junk.pt").write_bytes(b"\x00" * 100)
    with pytest.raises(ModelError, match="not a readable dnh checkpoint"):
        load_checkpoint(tmp_path / "junk.pt")
    with open(tmp_path / "plain.pt", "wb") as handle:
        pickle.dump({"format": "dnh-checkpoint", "x": Evil()}, handle)
    with pytest.raises(ModelError, match="not a readable dnh checkpoint"):
        load_checkpoint(tmp_path / "plain.pt")
    torch.save({"format": "dnh-checkpoint", "x": Evil()}, tmp_path / "torch-evil.pt")
    with pytest.raises(ModelError, match="not a readable dnh checkpoint"):
        load_checkpoint(tmp_path / "torch-evil.pt")
    torch.save({"weights": torch.zeros(3)}, tmp_path / "other.pt")
    with pytest.raises(ModelError, match="not a dnh checkpoint"):
        load_checkpoint(tmp_path / "other.pt")


def test_incomplete_or_mismatched_checkpoints_are_refused(tmp_path: Path) -> None:
    save_checkpoint(tmp_path / "thin.pt", {"arch": "lenet5-dnh"})
    with pytest.raises(ModelError, match="lacks"):
        load_checkpoint(tmp_path / "thin.pt")
    from dnhcli.models.registry import create_model

    weights = create_model("lenet5-dnh", bits=32, classes=3).state_dict()
    payload = {"arch": "lenet5-dnh", "bits": 48, "class_names": ["a", "b", "c"],
               "classes_mode": "organ", "organ_names": [], "disease_names": [], "hparams": {},
               "epoch": 1, "model": weights, "dataset": {}}
    save_checkpoint(tmp_path / "bits.pt", payload)
    with pytest.raises(ModelError, match="do not fit lenet5-dnh with 48 bits"):
        model_from_checkpoint(load_checkpoint(tmp_path / "bits.pt"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bits.pt", "thin.pt"]
