"""Images -> continuous codes with a PyTorch encoder, in batches, scaled as in training."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

BATCH = 512  # fastest here for this network: larger batches fall out of cache


def to_input(images: torch.Tensor) -> torch.Tensor:
    """uint8 (N, 28, 28) -> float (N, 1, 28, 28) in [0, 1]: the one preprocessing of dnh.

    The result is channels-last: oneDNN's convolutions for this small network run about
    1.4x faster in that layout on CPU (values are the same)."""
    x = images.unsqueeze(1).float().mul_(1.0 / 255.0)
    return x.contiguous(memory_format=torch.channels_last)


def channels_last(module: nn.Module) -> nn.Module:
    """Put a network's convolution weights in the channels-last layout (see `to_input`)."""
    return module.to(memory_format=torch.channels_last)  # type: ignore[call-overload]


def encode_images(encoder: nn.Module, images: torch.Tensor | np.ndarray,
                  batch: int = BATCH) -> np.ndarray:
    """Continuous codes h (N, K) float32 of uint8 images (N, 28, 28), in eval mode."""
    if isinstance(images, np.ndarray):
        images = torch.from_numpy(np.require(images, requirements=["C", "W"]))  # copies memmaps
    was_training = encoder.training
    encoder.eval()
    try:
        with torch.inference_mode():
            parts = [encoder(to_input(images[i:i + batch])) for i in range(0, len(images), batch)]
    finally:
        encoder.train(was_training)
    if not parts:
        return np.zeros((0, 0), np.float32)
    return torch.cat(parts).numpy()
