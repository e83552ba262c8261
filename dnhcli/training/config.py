"""What a training run is: `Hyperparams` (everything that decides the weights) and
`TrainConfig` (data, output and how to run). Importing this module does not import torch."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from dnhcli.errors import InputError
from dnhcli.models.registry import OBJECTIVES, model_defaults

LR_SCHEDULES = ("constant", "cosine", "step")
SAMPLINGS = ("natural", "organ", "class")
CLASS_MODES = ("organ", "class")
SELECTION_METRIC = "val_disease_map@100"


@dataclass(frozen=True)
class Hyperparams:
    """Everything that decides the trained weights. The defaults are dnh's default training
    (the BN CNN toward hierarchical hash centres, docs/TRAINING.md); `preset("reference")`
    gives the reference method."""

    arch: str = "bncnn"
    bits: int = 48
    classes: str = "class"
    epochs: int = 15
    lr: float = 1e-3
    batch_size: int = 128
    class_weight: float = 1.0
    alpha1: float = 0.5
    alpha2: float = 0.5
    beta: float = 0.6
    gamma: float = 1.0
    quantization: float = 0.5
    balance: bool = False
    organ_balance: bool = False
    max_pairs: int = 1024
    seed: int = 0
    shift: int = 2
    hflip: bool = True
    lr_schedule: str = "cosine"
    weight_decay: float = 0.0
    label_smoothing: float = 0.0
    objective: str = "centres"
    centre_weight: float = 1.0
    sampling: str = "natural"
    logit_adjust: float = 0.0
    ordinal: bool = False
    instance_weight: float = 1.0
    instance_temperature: float = 0.3
    instance_balance: float = 0.0

    def check(self) -> None:
        from dnhcli.index.codes import validate_bits  # numpy: not needed for `dnh train --help`

        model_defaults(self.arch)
        validate_bits(self.bits)
        if self.objective not in OBJECTIVES:
            raise InputError(f"unknown objective {self.objective!r}",
                             hint=f"available objectives: {', '.join(OBJECTIVES)}")
        if self.classes not in CLASS_MODES:
            raise InputError(f"--classes must be one of {', '.join(CLASS_MODES)}, got {self.classes!r}")
        for name in ("epochs", "batch_size", "max_pairs"):
            if getattr(self, name) < 1 or (name == "batch_size" and self.batch_size < 2):
                raise InputError(f"--{name.replace('_', '-')} is too small: {getattr(self, name)}")
        for name in ("lr", "gamma"):
            if not 0 < getattr(self, name) < math.inf:
                raise InputError(f"--{name} must be positive and finite, got {getattr(self, name)}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise InputError(f"--lr-schedule must be one of {', '.join(LR_SCHEDULES)}, "
                             f"got {self.lr_schedule!r}")
        if self.sampling not in SAMPLINGS:
            raise InputError(f"--sampling must be one of {', '.join(SAMPLINGS)}, got {self.sampling!r}")
        if not 0 <= self.shift <= 8:
            raise InputError(f"--shift must be between 0 and 8 pixels, got {self.shift}")
        if not 0 <= self.label_smoothing < 1:
            raise InputError(f"--label-smoothing must be in [0, 1), got {self.label_smoothing}")
        if not 0.01 <= self.instance_temperature <= 10:
            raise InputError(f"--instance-temperature must be between 0.01 and 10, "
                             f"got {self.instance_temperature}")
        for name in ("class_weight", "alpha1", "alpha2", "beta", "quantization", "weight_decay",
                     "centre_weight", "logit_adjust", "instance_weight", "instance_balance"):
            if not 0 <= getattr(self, name) < math.inf:
                raise InputError(f"--{name.replace('_', '-')} must be zero or positive and finite, "
                                 f"got {getattr(self, name)}")


# Named starting points of `dnh train --preset`; options given on the command line override them.
PRESETS: dict[str, dict[str, Any]] = {
    "default": {},
    # the reference method (METHOD.md): LeNet-5, classification over organs + Cauchy J1/J2 +
    # order discriminator, no quantization term, no augmentation, 100 epochs of constant Adam
    "reference": {
        "arch": "lenet5-dnh", "objective": "dnh", "epochs": 100, "classes": "organ", "lr": 1e-3,
        "batch_size": 256, "class_weight": 1.0, "alpha1": 0.5, "alpha2": 0.5, "beta": 0.6,
        "gamma": 1.0, "quantization": 0.0, "balance": False, "organ_balance": False, "shift": 0,
        "hflip": False, "lr_schedule": "constant", "weight_decay": 0.0, "label_smoothing": 0.0,
        "sampling": "natural", "logit_adjust": 0.0, "ordinal": False, "instance_weight": 0.0,
        "instance_balance": 0.0},
}


def preset(name: str, **changes: Any) -> Hyperparams:
    """The hyperparameters of preset `name`, with `changes` on top."""
    if name not in PRESETS:
        raise InputError(f"unknown preset {name!r}", hint=f"available presets: {', '.join(PRESETS)}")
    return replace(Hyperparams(), **{**PRESETS[name], **changes})


@dataclass(frozen=True)
class TrainConfig:
    """A training run: data, output folder, hyperparameters and how to run."""

    data: Path
    out: Path
    hparams: Hyperparams = field(default_factory=Hyperparams)
    threads: int | None = None
    resume: bool = False
    force: bool = False
    val_every: int = 1
