"""Training-time augmentation and learning-rate schedules (optional `Hyperparams` settings).

Augmentation works on a model input batch (N, 1, 28, 28) float in [0, 1]; every draw comes
from a CPU `torch.Generator` the trainer seeds by (seed, epoch), so runs and resumed runs are
deterministic. Inference never augments.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def random_shift(x: torch.Tensor, shift: int, generator: torch.Generator) -> torch.Tensor:
    """Translate each image by its own random offset in [-shift, shift] pixels (both axes);
    the border is filled by replicating the edge pixels. shift 0 returns `x` unchanged."""
    if shift <= 0:
        return x
    n, _, height, width = x.shape
    padded = F.pad(x.contiguous(), (shift, shift, shift, shift), mode="replicate")
    dy, dx = torch.randint(0, 2 * shift + 1, (2, n), generator=generator)
    rows = (dy[:, None] + torch.arange(height))[:, :, None]  # (N, H, 1)
    cols = (dx[:, None] + torch.arange(width))[:, None, :]  # (N, 1, W)
    out = padded[torch.arange(n)[:, None, None], 0, rows, cols].unsqueeze(1)
    return out.contiguous(memory_format=torch.channels_last)


def random_hflip(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Mirror each image left-right with probability 1/2."""
    flip = torch.rand(x.shape[0], generator=generator) < 0.5
    out = torch.where(flip[:, None, None, None], x.flip(3), x)
    return out.contiguous(memory_format=torch.channels_last)


def augment(x: torch.Tensor, shift: int, hflip: bool, generator: torch.Generator) -> torch.Tensor:
    """`random_shift` then (if `hflip`) `random_hflip`, all draws from `generator`."""
    x = random_shift(x, shift, generator)
    return random_hflip(x, generator) if hflip else x


def lr_factor(schedule: str, epoch: int, epochs: int) -> float:
    """Multiplier of the base learning rate in `epoch` (1-based) of `epochs`.

    constant: 1. cosine: 0.5 (1 + cos(pi (epoch - 1) / epochs)), from 1 down towards 0.
    step: 1, then 0.1 from 50% of the epochs and 0.01 from 75%.
    """
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * (epoch - 1) / epochs))
    if schedule == "step":
        done = (epoch - 1) / epochs
        return 0.01 if done >= 0.75 else 0.1 if done >= 0.5 else 1.0
    return 1.0
