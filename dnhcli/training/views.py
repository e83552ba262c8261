"""Two random views of each image for the instance term (torch only, batched, CPU-cheap).

Each view of an image (N, 1, 28, 28) float in [0, 1] gets its own draws of what a stored
image's copy meets in practice (docs/TRAINING.md, "Instance term"):

- geometry, one `affine_grid` + `grid_sample` (bilinear, edge pixels replicated): a rotation
  of up to +-`rotate` degrees, a rescale by a factor in [1 - scale, 1 + scale] and a
  translation of up to +-`shift` pixels per axis (sub-pixel);
- intensity: brightness x b then contrast around the image mean x c, b and c in
  [1 - intensity, 1 + intensity];
- with probability 1/2, a light 3x3 Gaussian blur (sigma in [0.3, 0.8]; re-encoding-like);
- Gaussian noise of a standard deviation drawn in [0, `noise`]; clipped to [0, 1].

A left-right flip (with `hflip`) is drawn once per image and applied to both views, so it
varies the class terms' input without asking the codes to be mirror-invariant. Every draw
comes from `generator`, so a seeded run repeats exactly.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

ROTATE_DEGREES = 8.0
SCALE = 0.1
INTENSITY = 0.15
NOISE = 0.03
BLUR_SIGMA = (0.3, 0.8)


def _uniform(n: int, low: float, high: float, generator: torch.Generator) -> torch.Tensor:
    return low + (high - low) * torch.rand(n, generator=generator)


def random_affine(x: torch.Tensor, generator: torch.Generator, shift: float = 2.0,
                  rotate: float = ROTATE_DEGREES, scale: float = SCALE) -> torch.Tensor:
    """Rotate, rescale and translate each image by its own random amounts (one resampling)."""
    n, _, height, width = x.shape
    angle = torch.deg2rad(_uniform(n, -rotate, rotate, generator))
    factor = _uniform(n, 1.0 - scale, 1.0 + scale, generator)
    # translation in normalized coordinates: a pixel is 2 / size (align_corners=False)
    tx = _uniform(n, -shift, shift, generator) * 2.0 / width
    ty = _uniform(n, -shift, shift, generator) * 2.0 / height
    cos, sin = torch.cos(angle) / factor, torch.sin(angle) / factor  # output -> input coords
    theta = torch.stack([torch.stack([cos, -sin, tx], 1), torch.stack([sin, cos, ty], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def _blur_kernels(sigma: torch.Tensor) -> torch.Tensor:
    """(N, 1, 3, 3) normalized Gaussian kernels, one per sigma."""
    taps = torch.tensor([-1.0, 0.0, 1.0])
    g = torch.exp(-taps[None, :] ** 2 / (2 * sigma[:, None] ** 2))
    k = g[:, :, None] * g[:, None, :]
    return (k / k.sum(dim=(1, 2), keepdim=True)).unsqueeze(1)


def random_photometric(x: torch.Tensor, generator: torch.Generator,
                       intensity: float = INTENSITY, noise: float = NOISE,
                       blur: bool = True) -> torch.Tensor:
    """Brightness, contrast, (half the time) a light blur, and Gaussian noise, per image."""
    n = x.shape[0]
    b = _uniform(n, 1.0 - intensity, 1.0 + intensity, generator)[:, None, None, None]
    c = _uniform(n, 1.0 - intensity, 1.0 + intensity, generator)[:, None, None, None]
    x = x * b
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = (x - mean) * c + mean
    if blur:
        sigma = _uniform(n, *BLUR_SIGMA, generator)
        use = torch.rand(n, generator=generator) < 0.5
        padded = F.pad(x, (1, 1, 1, 1), mode="replicate")
        # one grouped convolution: each image with its own kernel
        blurred = F.conv2d(padded.transpose(0, 1), _blur_kernels(sigma), groups=n).transpose(0, 1)
        x = torch.where(use[:, None, None, None], blurred, x)
    sd = _uniform(n, 0.0, noise, generator)[:, None, None, None]
    x = x + sd * torch.randn(x.shape, generator=generator)
    return x.clamp(0.0, 1.0)


def two_views(x: torch.Tensor, generator: torch.Generator, shift: float = 2.0,
              hflip: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Two independently altered views of each image of `x` (same shape and layout as `x`)."""
    x = x.contiguous()
    if hflip:
        flip = torch.rand(x.shape[0], generator=generator) < 0.5
        x = torch.where(flip[:, None, None, None], x.flip(3), x)
    views = []
    for _ in range(2):
        v = random_photometric(random_affine(x, generator, shift=shift), generator)
        views.append(v.contiguous(memory_format=torch.channels_last))
    return views[0], views[1]
