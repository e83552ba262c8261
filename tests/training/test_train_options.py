"""The optional training settings: augmentation, learning-rate schedule, weight decay and
label smoothing (each off in the reference preset; each keeps runs and resumed runs deterministic)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from dnhcli.errors import InputError
from dnhcli.models.checkpoint import load_checkpoint
from dnhcli.models.losses import classification_loss, disease_level_loss, pair_losses
from dnhcli.training import trainer as train_module
from dnhcli.training.augment import augment, lr_factor, random_hflip, random_shift
from dnhcli.training.config import preset
from dnhcli.training.trainer import Hyperparams, TrainConfig, TrainingInterrupted, train

FAST = preset("reference", epochs=2, batch_size=64, bits=16, seed=3, quantization=0.1)
OPTIONS = {"shift": 2, "hflip": True, "lr_schedule": "cosine", "weight_decay": 1e-4,
           "label_smoothing": 0.1}


def _batch() -> torch.Tensor:
    return torch.rand(5, 1, 28, 28, generator=torch.Generator().manual_seed(0))


def test_random_shift_translates_each_image_within_the_range() -> None:
    x = _batch()
    y = random_shift(x, 2, torch.Generator().manual_seed(1))
    assert y.shape == x.shape and torch.equal(random_shift(x, 0, torch.Generator()), x)
    for b in range(len(x)):   # the interior is the original moved by some (dy, dx) in [-2, 2]
        assert any(torch.equal(y[b, 0, 4:24, 4:24], x[b, 0, 4 + dy:24 + dy, 4 + dx:24 + dx])
                   for dy in range(-2, 3) for dx in range(-2, 3))
    again = random_shift(x, 2, torch.Generator().manual_seed(1))
    assert torch.equal(y, again)


def test_random_hflip_mirrors_some_images_and_keeps_the_rest() -> None:
    x = _batch()
    y = random_hflip(x, torch.Generator().manual_seed(2))
    for b in range(len(x)):
        assert torch.equal(y[b], x[b]) or torch.equal(y[b], x[b].flip(2))
    assert torch.equal(augment(x, 0, False, torch.Generator()), x)


def test_lr_factor_schedules() -> None:
    assert [lr_factor("constant", e, 10) for e in (1, 10)] == [1.0, 1.0]
    assert lr_factor("cosine", 1, 10) == 1.0
    assert lr_factor("cosine", 6, 10) == pytest.approx(0.5)
    assert lr_factor("cosine", 10, 10) == pytest.approx(0.5 * (1 + math.cos(0.9 * math.pi)))
    assert [lr_factor("step", e, 8) for e in (1, 4, 5, 6, 7, 8)] == [1, 1, 0.1, 0.1, 0.01, 0.01]


def test_label_smoothing_by_hand() -> None:
    logits = torch.tensor([[2.0, 0.0, -1.0]])
    log_p = torch.log_softmax(logits, dim=1)[0]
    expected = -(0.9 * log_p[0] + 0.1 * log_p.mean())
    assert classification_loss(logits, torch.tensor([0]), 0.1).item() == pytest.approx(
        expected.item(), abs=1e-6)
    assert classification_loss(logits, torch.tensor([0])).item() == pytest.approx(-log_p[0].item())


def test_options_are_checked() -> None:
    for bad in ({"lr_schedule": "linear"}, {"shift": -1}, {"label_smoothing": 1.0},
                {"weight_decay": -0.1}):
        with pytest.raises(InputError):
            Hyperparams(**{**FAST.__dict__, **bad}).check()


def test_options_train_and_resume_exactly(synthetic_dataset: Path, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    hp = Hyperparams(**{**FAST.__dict__, **OPTIONS, "epochs": 3})
    full = train(TrainConfig(data=synthetic_dataset, out=tmp_path / "full", hparams=hp, threads=1))
    assert load_checkpoint(full.last)["hparams"]["lr_schedule"] == "cosine"
    real = train_module.Trainer.run_epoch

    def interrupted(self: train_module.Trainer, epoch: int) -> dict[str, float]:
        if epoch == 3:
            raise KeyboardInterrupt
        return real(self, epoch)

    part = TrainConfig(data=synthetic_dataset, out=tmp_path / "part", hparams=hp, threads=1)
    with monkeypatch.context() as patch:
        patch.setattr(train_module.Trainer, "run_epoch", interrupted)
        with pytest.raises(TrainingInterrupted):
            train(part)
    other = Hyperparams(**{**hp.__dict__, "shift": 1})
    with pytest.raises(InputError, match="shift"):
        train(TrainConfig(data=synthetic_dataset, out=tmp_path / "part", hparams=other, threads=1,
                          resume=True))
    train(TrainConfig(data=synthetic_dataset, out=tmp_path / "part", hparams=hp, threads=1,
                      resume=True))
    a, b = load_checkpoint(full.last)["model"], load_checkpoint(tmp_path / "part" / "last.pt")["model"]
    # Not torch.equal: the first training run of a process can differ from later ones in the
    # last bits (seen with the default settings too), so compare to float32 rounding.
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=1e-5)


def test_organ_balanced_j2_is_the_mean_of_per_organ_j2() -> None:
    h = torch.randn(9, 8, generator=torch.Generator().manual_seed(4))
    organ = torch.tensor([0, 0, 0, 0, 0, 0, 1, 1, 1])
    disease = torch.tensor([0, 0, 1, 1, 1, 0, 0, 1, 1])
    for balance in (False, True):
        per_organ = [disease_level_loss(h[organ == o], organ[organ == o], disease[organ == o],
                                        balance=balance) for o in (0, 1)]
        j1, j2 = pair_losses(h, organ, disease, balance=balance, organ_balance=True)
        assert j2.item() == pytest.approx(sum(per_organ).item() / 2, rel=1e-5)
        assert j1.item() == pytest.approx(pair_losses(h, organ, disease, balance=balance)[0].item())


def test_class_weight_zero_leaves_the_classifier_untrained(synthetic_dataset: Path, tmp_path: Path) -> None:
    from dataclasses import replace

    from dnhcli.models.registry import create_model

    hp = replace(FAST, epochs=1, class_weight=0.0)
    result = train(TrainConfig(data=synthetic_dataset, out=tmp_path / "run", hparams=hp, threads=1))
    state = load_checkpoint(result.last)["model"]
    torch.manual_seed(hp.seed)
    fresh = create_model(hp.arch, bits=hp.bits, classes=3).state_dict()  # organ classes
    classifier = [k for k in state if k.startswith("classifier.")]
    assert classifier and all(torch.equal(state[k], fresh[k]) for k in classifier)
    assert not all(torch.equal(state[k], fresh[k]) for k in state if k.startswith("encoder."))
    with pytest.raises(InputError):
        replace(FAST, class_weight=-1.0).check()
