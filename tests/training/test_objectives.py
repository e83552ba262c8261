"""Every architecture with every objective: training lowers the loss, resume repeats an
uninterrupted run, and the checkpoint records both."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from dnhcli.errors import InputError
from dnhcli.models.checkpoint import load_checkpoint
from dnhcli.models.registry import OBJECTIVES
from dnhcli.training import trainer as train_module
from dnhcli.training.config import Hyperparams, TrainConfig
from dnhcli.training.trainer import TrainingInterrupted, train

COMBINATIONS = [("lenet5-dnh", "centres"), ("bncnn", "dnh"), ("bncnn", "centres"), ("resnet18", "centres")]


def _config(data: Path, out: Path, arch: str, objective: str, resume: bool = False) -> TrainConfig:
    # the instance term (two views: twice the work) is left to the cheaper architectures
    hp = Hyperparams(arch=arch, objective=objective, epochs=3, batch_size=64, bits=16, seed=2,
                     classes="class", lr_schedule="cosine", shift=1, hflip=True,
                     instance_weight=0.0 if arch == "resnet18" else 1.0)
    return TrainConfig(data=data, out=out, hparams=hp, threads=1, resume=resume)


@pytest.mark.parametrize(("arch", "objective"), COMBINATIONS)
def test_training_lowers_the_loss_and_resumes_exactly(arch: str, objective: str, synthetic_dataset: Path,
                                                      tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    full = train(_config(synthetic_dataset, tmp_path / "full", arch, objective))
    assert full.history[-1].loss_total < full.history[0].loss_total
    if objective == "centres":
        assert all(row.loss_centre > 0 and row.loss_j1 == row.loss_j2 == row.loss_disc == 0
                   for row in full.history)
    else:
        assert all(row.loss_centre == 0 for row in full.history)
    real = train_module.Trainer.run_epoch

    def interrupted(self: train_module.Trainer, epoch: int) -> dict[str, float]:
        if epoch == 3:
            raise KeyboardInterrupt
        return real(self, epoch)

    with monkeypatch.context() as patch:
        patch.setattr(train_module.Trainer, "run_epoch", interrupted)
        with pytest.raises(TrainingInterrupted):
            train(_config(synthetic_dataset, tmp_path / "part", arch, objective))
    resumed = train(_config(synthetic_dataset, tmp_path / "part", arch, objective, resume=True))
    a, b = load_checkpoint(full.last), load_checkpoint(resumed.last)
    assert a["arch"] == arch and a["hparams"]["objective"] == objective
    # to float32 rounding: the first training run of a process can differ in the last bits
    for key in a["model"]:  # BatchNorm statistics too
        torch.testing.assert_close(a["model"][key], b["model"][key], rtol=0, atol=1e-5)
    assert resumed.history[-1].loss_centre == pytest.approx(full.history[-1].loss_centre, abs=1e-5)


def test_unknown_objective_is_refused() -> None:
    assert set(OBJECTIVES) == {"dnh", "centres"}
    with pytest.raises(InputError, match="unknown objective"):
        Hyperparams(objective="csq").check()
    with pytest.raises(InputError):
        Hyperparams(centre_weight=-1.0).check()
