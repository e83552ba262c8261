"""Networks of DNH and a small registry: `create_model(name, bits, classes)`, `list_models()`.

One architecture is registered, "lenet5-dnh" (METHOD.md, "Network"): a LeNet-5
hash encoder (image -> continuous code h in (-1, 1)^K), a classifier head on the
encoder's 120-d feature and a discriminator on ordered pairs of codes. Only the
encoder is needed at inference and is what gets exported (`DNHNetwork.encoder`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from dnhcli.core.codes import validate_bits
from dnhcli.core.errors import InputError

FEATURE_DIM = 120


@dataclass(frozen=True)
class ModelDefaults:
    """What a registered architecture expects and builds by default."""

    arch: str
    description: str
    input_size: tuple[int, int, int] = (1, 28, 28)
    input_range: tuple[float, float] = (0.0, 1.0)
    bits: int = 48
    classes: int = 4


def validate_classes(classes: int) -> int:
    """Return `classes` if it is an integer >= 2, else raise InputError."""
    if isinstance(classes, bool) or not isinstance(classes, int) or classes < 2:
        raise InputError(f"number of classes must be an integer >= 2, got {classes!r}")
    return classes


class HashEncoder(nn.Module):
    """LeNet-5 encoder: (N, 1, 28, 28) floats in [0, 1] -> codes h (N, K) in (-1, 1)."""

    def __init__(self, bits: int = 48) -> None:
        super().__init__()
        self.bits = validate_bits(bits)
        self.conv = nn.Sequential(
            nn.Conv2d(1, 6, kernel_size=5),  # 28 -> 24
            nn.ReLU(),
            nn.MaxPool2d(2),  # -> 12
            nn.Conv2d(6, 16, kernel_size=5),  # -> 8
            nn.ReLU(),
            nn.MaxPool2d(2),  # -> 4, so 16 * 4 * 4 = 256 features
            nn.Flatten(),
        )
        self.fc = nn.Sequential(nn.Linear(256, FEATURE_DIM), nn.ReLU())
        self.hash = nn.Linear(FEATURE_DIM, self.bits)

    def features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return the feature f (N, 120) and the continuous code h (N, K)."""
        f = self.fc(self.conv(x))
        return f, torch.tanh(self.hash(f))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return the continuous code h (N, K); the binary code is h >= 0."""
        return self.features(x)[1]


class ClassifierHead(nn.Module):
    """Classifier on the encoder's feature f (N, 120) -> logits (N, C)."""

    def __init__(self, classes: int = 4) -> None:
        super().__init__()
        self.classes = validate_classes(classes)
        self.layers = nn.Sequential(
            nn.Linear(FEATURE_DIM, 84),
            nn.ReLU(),
            nn.Linear(84, 64),
            nn.ReLU(),
            nn.Linear(64, self.classes),
        )

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        """Return class logits (N, C)."""
        return self.layers(f)


class PairDiscriminator(nn.Module):
    """Discriminator on ordered pairs of codes (P, 2, K) -> one logit per pair (P,).

    A 1x1 Conv1d over the pair axis mixes the two codes (w0 * h_first + w1 * h_second + b),
    then fc K -> 32, ReLU, fc 32 -> 1.
    """

    def __init__(self, bits: int = 48) -> None:
        super().__init__()
        self.bits = validate_bits(bits)
        self.mix = nn.Conv1d(2, 1, kernel_size=1)
        self.layers = nn.Sequential(nn.Linear(self.bits, 32), nn.ReLU(), nn.Linear(32, 1))

    def forward(self, pairs: torch.Tensor) -> torch.Tensor:
        """Return logits (P,) for pairs (P, 2, K)."""
        mixed = self.mix(pairs).squeeze(1)  # (P, 1, K) -> (P, K)
        return self.layers(mixed).squeeze(1)


class DNHNetwork(nn.Module):
    """Encoder, classifier head and pair discriminator of one DNH model."""

    def __init__(self, bits: int = 48, classes: int = 4, arch: str = "lenet5-dnh") -> None:
        super().__init__()
        self.bits = validate_bits(bits)
        self.classes = validate_classes(classes)
        self.arch = arch
        self.encoder = HashEncoder(self.bits)
        self.classifier = ClassifierHead(self.classes)
        self.discriminator = PairDiscriminator(self.bits)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return the continuous codes h (N, K) and the class logits (N, C)."""
        f, h = self.encoder.features(x)
        return h, self.classifier(f)

    def encoder_parameters(self) -> list[nn.Parameter]:
        """Parameters trained by the encoder's optimizer (encoder and classifier head)."""
        return [*self.encoder.parameters(), *self.classifier.parameters()]


_Builder = Callable[[int, int], DNHNetwork]
_REGISTRY: dict[str, tuple[ModelDefaults, _Builder]] = {}


def register_model(defaults: ModelDefaults) -> Callable[[_Builder], _Builder]:
    """Register a builder `(bits, classes) -> DNHNetwork` under `defaults.arch`."""

    def decorate(builder: _Builder) -> _Builder:
        if defaults.arch in _REGISTRY:
            raise ValueError(f"model {defaults.arch!r} is registered twice")  # programming error
        _REGISTRY[defaults.arch] = (defaults, builder)
        return builder

    return decorate


@register_model(
    ModelDefaults(
        arch="lenet5-dnh",
        description="LeNet-5 hash encoder (about 40k parameters at 48 bits) for 28x28 grey images",
    )
)
def _lenet5_dnh(bits: int, classes: int) -> DNHNetwork:
    return DNHNetwork(bits=bits, classes=classes, arch="lenet5-dnh")


def list_models() -> list[str]:
    """Names of the registered architectures, sorted."""
    return sorted(_REGISTRY)


def _lookup(name: str) -> tuple[ModelDefaults, _Builder]:
    if name not in _REGISTRY:
        raise InputError(
            f"unknown model {name!r}", hint=f"available models: {', '.join(list_models())}"
        )
    return _REGISTRY[name]


def model_defaults(name: str) -> ModelDefaults:
    """The defaults (input size, input range, bits, classes) of a registered architecture."""
    return _lookup(name)[0]


def create_model(name: str, bits: int = 48, classes: int = 4) -> DNHNetwork:
    """Build a registered architecture with K = `bits` and C = `classes` (seed torch first)."""
    return _lookup(name)[1](bits, classes)


def count_parameters(module: nn.Module) -> int:
    """Number of trainable parameters of a module."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)
