"""Realistic alterations of grey images, for instance retrieval (numpy and PIL only).

Each alteration maps a uint8 batch (N, H, W) to a new uint8 batch of the same shape; the random
ones (direction of a shift, sense of a rotation, noise) draw from a generator seeded by the seed
and the alteration's name, so a result depends only on (images, name, seed). Values are rounded
to the nearest integer and clipped to 0..255. Definitions (also in docs/EVALUATION.md):

- exact: an unchanged copy.
- jpeg: saved as a baseline JPEG by PIL at quality 75, and decoded.
- intensity+10 / intensity-10: every pixel times 1.10 / 0.90.
- contrast: m + 0.9 (x - m), m the image's own mean (contrast lowered by 10%).
- shift1 / shift2: moved by s = 1 / 2 pixels in one of the 8 directions (dy, dx in {-s, 0, s},
  not both 0), chosen at random per image; the uncovered border repeats the edge pixels.
- rotate5: rotated by 5 degrees about the image centre, clockwise or anticlockwise at random per
  image, bilinear (PIL); the corners are filled from the edge-replicated surround.
- rescale0.9 / rescale1.1: resized by PIL (bilinear) to round(0.9 S) / round(1.1 S) pixels a side
  (25 / 31 at S = 28), then padded back to S with the edge pixels / cropped back to its centre.
- noise: plus Gaussian noise of standard deviation 3 grey levels (about 1.2% of the range).
"""

from __future__ import annotations

import io
import math
import zlib
from collections.abc import Callable

import numpy as np

from dnhcli.errors import InputError

JPEG_QUALITY = 75
NOISE_SIGMA = 3.0  # grey levels, of 0..255
ROTATION_DEGREES = 5.0

Alteration = Callable[[np.ndarray, np.random.Generator], np.ndarray]


def _to_uint8(values: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(values), 0, 255).astype(np.uint8)


def shift(images: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """Move the content of every image by (dy, dx) pixels (down, right); edges replicated."""
    s = max(abs(dy), abs(dx))
    if s == 0:
        return images.copy()
    _, h, w = images.shape
    padded = np.pad(images, ((0, 0), (s, s), (s, s)), mode="edge")
    return np.ascontiguousarray(padded[:, s - dy:s - dy + h, s - dx:s - dx + w])


def _shifted(step: int) -> Alteration:
    directions = [(dy, dx) for dy in (-step, 0, step) for dx in (-step, 0, step) if dy or dx]

    def run(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        chosen = rng.integers(0, len(directions), len(images))
        out = np.empty_like(images)
        for d in np.unique(chosen).tolist():
            rows = chosen == d
            out[rows] = shift(images[rows], *directions[d])
        return out

    return run


def _scaled(factor: float) -> Alteration:
    def run(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return _to_uint8(images.astype(np.float32) * np.float32(factor))

    return run


def _contrast(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    x = images.astype(np.float32)
    mean = x.mean(axis=(1, 2), keepdims=True)
    return _to_uint8(mean + np.float32(0.9) * (x - mean))


def _jpeg(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    from PIL import Image

    out = np.empty_like(images)
    for i, image in enumerate(images):
        buffer = io.BytesIO()
        Image.fromarray(np.ascontiguousarray(image), "L").save(buffer, format="JPEG", quality=JPEG_QUALITY)
        buffer.seek(0)
        with Image.open(buffer) as decoded:
            out[i] = np.asarray(decoded.convert("L"))
    return out


def rotate(image: np.ndarray, degrees: float) -> np.ndarray:
    """One (H, W) uint8 image rotated anticlockwise by `degrees` about its centre (PIL, bilinear),
    on an edge-replicated surround, so that no constant fill enters the corners."""
    from PIL import Image

    h, w = image.shape
    margin = int(math.ceil(max(h, w) * abs(math.sin(math.radians(degrees))))) + 2
    padded = np.pad(image, margin, mode="edge")
    turned = Image.fromarray(padded, "L").rotate(degrees, resample=Image.Resampling.BILINEAR)
    return np.asarray(turned)[margin:margin + h, margin:margin + w].copy()


def _rotated(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    senses = rng.choice(np.array([-1.0, 1.0]), len(images))
    out = np.empty_like(images)
    for i, (image, sense) in enumerate(zip(images, senses.tolist())):
        out[i] = rotate(image, sense * ROTATION_DEGREES)
    return out


def rescale(image: np.ndarray, factor: float) -> np.ndarray:
    """One (H, W) uint8 image resized by `factor` (PIL, bilinear), then centre-cropped or
    edge-padded back to (H, W)."""
    from PIL import Image

    h, w = image.shape
    nh, nw = max(1, round(h * factor)), max(1, round(w * factor))
    resized = np.asarray(Image.fromarray(image, "L").resize((nw, nh), Image.Resampling.BILINEAR))

    def fit(array: np.ndarray, axis: int, size: int) -> np.ndarray:
        have = array.shape[axis]
        if have > size:
            start = (have - size) // 2
            return np.take(array, np.arange(start, start + size), axis=axis)
        before = (size - have) // 2
        pad = [(0, 0), (0, 0)]
        pad[axis] = (before, size - have - before)
        return np.pad(array, pad, mode="edge")

    return np.ascontiguousarray(fit(fit(resized, 0, h), 1, w))


def _rescaled(factor: float) -> Alteration:
    def run(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        out = np.empty_like(images)
        for i, image in enumerate(images):
            out[i] = rescale(image, factor)
        return out

    return run


def _noise(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    noise = rng.normal(0.0, NOISE_SIGMA, images.shape).astype(np.float32)
    return _to_uint8(images.astype(np.float32) + noise)


ALTERATIONS: dict[str, Alteration] = {
    "exact": lambda images, rng: images.copy(),
    "jpeg": _jpeg,
    "intensity+10": _scaled(1.10),
    "intensity-10": _scaled(0.90),
    "contrast": _contrast,
    "shift1": _shifted(1),
    "shift2": _shifted(2),
    "rotate5": _rotated,
    "rescale0.9": _rescaled(0.9),
    "rescale1.1": _rescaled(1.1),
    "noise": _noise,
}
ALTERATION_NAMES = tuple(ALTERATIONS)


def alter(images: np.ndarray, name: str, seed: int = 0) -> np.ndarray:
    """The alteration `name` of a uint8 batch (N, H, W): a new uint8 array of the same shape."""
    if name not in ALTERATIONS:
        raise InputError(f"unknown alteration {name!r}", hint=f"choose from: {', '.join(ALTERATION_NAMES)}")
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 3:
        raise InputError(f"images to alter must be uint8 (N, H, W), got {images.dtype} {images.shape}")
    rng = np.random.default_rng([int(seed), zlib.crc32(name.encode())])
    return ALTERATIONS[name](np.ascontiguousarray(images), rng)
