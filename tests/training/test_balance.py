"""Class-balance options: organ or class sampling, logit adjustment, the class-balanced centre
loss and graded centres; each keeps training deterministic."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from dnhcli.data.dataset import PreparedDataset
from dnhcli.errors import InputError
from dnhcli.models.checkpoint import load_checkpoint
from dnhcli.models.losses import classification_loss
from dnhcli.training.config import Hyperparams, TrainConfig
from dnhcli.training.trainer import Trainer, train

FAST = Hyperparams(epochs=2, batch_size=64, bits=16, seed=4)


def test_logit_adjusted_loss_by_hand() -> None:
    logits = torch.zeros(1, 2)
    log_prior = torch.log(torch.tensor([0.75, 0.25]))  # tau 1
    # softmax of the adjusted logits is the prior itself: -log 0.25 for the rare class
    assert classification_loss(logits, torch.tensor([1]), 0.0, log_prior).item() == pytest.approx(
        math.log(4), rel=1e-6)
    assert classification_loss(logits, torch.tensor([0]), 0.0, log_prior).item() == pytest.approx(
        -math.log(0.75), rel=1e-6)


@pytest.mark.parametrize("sampling", ["organ", "class"])
def test_balanced_sampling_draws_every_group_about_equally(sampling: str,
                                                           synthetic_dataset: Path) -> None:
    trainer = Trainer(PreparedDataset.open(synthetic_dataset), Hyperparams(**{**FAST.__dict__,
                                                                               "sampling": sampling}))
    group = trainer.train["organ" if sampling == "organ" else "klass"]
    n = len(group)
    order = torch.cat([trainer._order(epoch, n) for epoch in range(1, 21)])
    share = torch.bincount(group[order]).double() / len(order)
    groups = len(torch.unique(group))
    assert share.min() > 0.8 / groups and share.max() < 1.2 / groups
    assert torch.equal(trainer._order(3, n), trainer._order(3, n))  # seeded by (seed, epoch)
    natural = Trainer(PreparedDataset.open(synthetic_dataset), FAST)._order(1, n)
    assert sorted(natural.tolist()) == list(range(n))  # natural: every image once


def test_balance_options_train_deterministically(synthetic_dataset: Path, tmp_path: Path) -> None:
    hp = Hyperparams(**{**FAST.__dict__, "sampling": "class", "balance": True, "logit_adjust": 1.0,
                        "ordinal": True})
    # three runs, the last two compared: the first training of a process can differ from later
    # ones in the last bits (oneDNN picks its kernels then), and 2 epochs of BatchNorm grow that
    runs = [train(TrainConfig(data=synthetic_dataset, out=tmp_path / f"run{i}", hparams=hp, threads=1))
            for i in range(3)]
    assert runs[1].history[-1].loss_total < runs[1].history[0].loss_total
    a, b = (load_checkpoint(r.last) for r in runs[1:])
    assert a["hparams"]["sampling"] == "class" and a["hparams"]["logit_adjust"] == 1.0
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key


def test_bad_balance_options_are_refused() -> None:
    with pytest.raises(InputError, match="--sampling"):
        Hyperparams(sampling="organs").check()
    with pytest.raises(InputError, match="--logit-adjust"):
        Hyperparams(logit_adjust=-1.0).check()
