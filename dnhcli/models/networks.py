"""The networks of DNH: the LeNet-5 hash encoder, a classifier head and a pair discriminator.

An encoder maps an image to a feature f and a continuous code h in (-1, 1)^K
(`features(x) -> (f, h)`, `feature_dim` wide); the classifier head works on f; the
discriminator sees ordered pairs of codes (METHOD.md, "Network"). Only the encoder is needed
at inference and is what gets exported (`DNHNetwork.encoder`). Stronger encoders are in
`dnhcli.models.encoders`.
"""

from __future__ import annotations

import torch
from torch import nn

from dnhcli.errors import InputError
from dnhcli.index.codes import validate_bits

FEATURE_DIM = 120


def validate_classes(classes: int) -> int:
    """Return `classes` if it is an integer >= 2, else raise InputError."""
    if isinstance(classes, bool) or not isinstance(classes, int) or classes < 2:
        raise InputError(f"number of classes must be an integer >= 2, got {classes!r}")
    return classes


class Encoder(nn.Module):
    """What every hash encoder provides: `features(x) -> (f, h)` with f (N, feature_dim) and
    h (N, bits) in (-1, 1); `forward(x) -> h`."""

    bits: int
    feature_dim: int

    def features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return the continuous code h (N, K); the binary code is h >= 0."""
        return self.features(x)[1]


class HashEncoder(Encoder):
    """LeNet-5 encoder: (N, 1, 28, 28) floats in [0, 1] -> codes h (N, K) in (-1, 1)."""

    feature_dim = FEATURE_DIM

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


class ClassifierHead(nn.Module):
    """The reference's classifier on the encoder's feature f (N, F) -> logits (N, C):
    fc 84, ReLU, fc 64, ReLU, fc C."""

    def __init__(self, classes: int = 4, feature_dim: int = FEATURE_DIM) -> None:
        super().__init__()
        self.classes = validate_classes(classes)
        self.layers = nn.Sequential(
            nn.Linear(feature_dim, 84),
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


class LinearHead(nn.Module):
    """A linear classifier on the encoder's feature f (N, F) -> logits (N, C)."""

    def __init__(self, classes: int, feature_dim: int) -> None:
        super().__init__()
        self.classes = validate_classes(classes)
        self.layers = nn.Linear(feature_dim, self.classes)

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        """Return class logits (N, C)."""
        return self.layers(f)


class DNHNetwork(nn.Module):
    """Encoder, classifier head and pair discriminator of one model. Without arguments for
    them, the reference's LeNet-5 encoder and classifier head."""

    def __init__(self, bits: int = 48, classes: int = 4, arch: str = "lenet5-dnh",
                 encoder: Encoder | None = None, classifier: nn.Module | None = None) -> None:
        super().__init__()
        self.bits = validate_bits(bits)
        self.classes = validate_classes(classes)
        self.arch = arch
        self.encoder: Encoder = encoder if encoder is not None else HashEncoder(self.bits)
        self.classifier = classifier if classifier is not None else ClassifierHead(
            self.classes, self.encoder.feature_dim)
        self.discriminator = PairDiscriminator(self.bits)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return the continuous codes h (N, K) and the class logits (N, C)."""
        f, h = self.encoder.features(x)
        return h, self.classifier(f)

    def encoder_parameters(self) -> list[nn.Parameter]:
        """Parameters trained by the encoder's optimizer (encoder and classifier head)."""
        return [*self.encoder.parameters(), *self.classifier.parameters()]


def count_parameters(module: nn.Module) -> int:
    """Number of trainable parameters of a module."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)
