"""Stronger hash encoders than the reference's LeNet-5, for 28x28 grey images.

- `BNCNNEncoder`: three stages of two 3x3 conv-BatchNorm-ReLU blocks (32, 64, 128 channels),
  2x2 max-pooling between stages, global average pooling: a 128-d feature, then a K-wide
  tanh hash layer (about 0.29M parameters at 48 bits).
- `ResNet18Encoder`: the ResNet-18 that MedMNIST v2 reports for 28 px images: a 3x3 stem of
  64 channels without max-pooling, four stages of two basic blocks (64, 128, 256, 512
  channels, strides 1, 2, 2, 2), global average pooling: a 512-d feature (about 11.2M
  parameters).

Both have the interface of `networks.HashEncoder`: `features(x) -> (f, h)`, `forward(x) -> h`,
`feature_dim`. BatchNorm runs in eval mode at inference, where export folds it into the
convolutions.
"""

from __future__ import annotations

import torch
from torch import nn

from dnhcli.index.codes import validate_bits
from dnhcli.models.networks import Encoder


def _conv_bn(cin: int, cout: int, stride: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(cout)]


class _Hashing(Encoder):
    """Shared tail: a trunk gives f (N, F); a linear layer and tanh give h (N, K)."""

    trunk: nn.Module

    def __init__(self, bits: int, feature_dim: int) -> None:
        super().__init__()
        self.bits = validate_bits(bits)
        self.feature_dim = feature_dim
        self.hash = nn.Linear(feature_dim, self.bits)

    def features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return the feature f (N, F) and the continuous code h (N, K)."""
        f = self.trunk(x)
        return f, torch.tanh(self.hash(f))


class BNCNNEncoder(_Hashing):
    """Compact BatchNorm CNN: 28 -> 14 -> 7 pixels, 128-d feature."""

    def __init__(self, bits: int = 48, widths: tuple[int, int, int] = (32, 64, 128)) -> None:
        super().__init__(bits, widths[-1])
        layers: list[nn.Module] = []
        cin = 1
        for stage, width in enumerate(widths):
            if stage:
                layers.append(nn.MaxPool2d(2))
            for _ in range(2):
                layers += [*_conv_bn(cin, width), nn.ReLU(inplace=True)]
                cin = width
        self.trunk = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())


class _BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.body = nn.Sequential(*_conv_bn(cin, cout, stride), nn.ReLU(inplace=True), *_conv_bn(cout, cout))
        self.skip: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.skip = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False),
                                      nn.BatchNorm2d(cout))
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.body(x) + self.skip(x))


class ResNet18Encoder(_Hashing):
    """ResNet-18 for 28x28 inputs (3x3 stem, no max-pooling), 512-d feature."""

    def __init__(self, bits: int = 48) -> None:
        super().__init__(bits, 512)
        layers: list[nn.Module] = [*_conv_bn(1, 64), nn.ReLU(inplace=True)]
        cin = 64
        for width, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
            layers += [_BasicBlock(cin, width, stride), _BasicBlock(width, width, 1)]
            cin = width
        self.trunk = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
