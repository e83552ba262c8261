"""The one preprocessing rule of dnh: any picture -> the model's square grey uint8 input.

1. Pixels become floats in [0, 1] by their bit depth's full range: 8-bit / 255, 16-bit /
   65535 (so a 16-bit copy of an 8-bit picture, v * 257, gives the picture back), floats as
   they are (they must lie in [0, 1]). No contrast stretching. DICOM files get their display
   values first (`dnhcli.data.dicom`).
2. A picture that is not already `side` x `side` is centre-cropped to a square of its short
   side and resized to `side` x `side`, as MedMNIST v2 made its 28 px images (centre crop
   to the short side for PneumoniaMNIST, RetinaMNIST and OCTMNIST; a no-op for square
   sources such as BreastMNIST). MedMNIST does not state its interpolation; dnh uses
   Pillow's antialiased bicubic filter on the float pixels of each channel.
3. Values are rounded to uint8 (as MedMNIST stores them); colour becomes grey with the
   BT.601 luma weights, after the resize, as `prepare-data` does with RetinaMNIST's RGB.

A picture of `side` x `side` skips step 2, so 28 x 28 inputs give exactly the codes they
gave before this rule existed.
"""

from __future__ import annotations

import numpy as np

from dnhcli.data.pooling import to_grey
from dnhcli.errors import InputError

MIN_SIDE = 8  # a thinner strip holds no picture worth hashing
MAX_PIXELS = 64_000_000  # per frame; more is refused before decoding (decompression bombs)
FULL_RANGE = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}


def check_size(height: int, width: int, source: str, frames: int = 1) -> None:
    """Refuse empty, thin and huge pictures before their pixels are decoded."""
    if height < MIN_SIDE or width < MIN_SIDE:
        raise InputError(f"{source}: a {width}x{height} picture is too small to hash",
                         hint=f"images need at least {MIN_SIDE} pixels on each side")
    if height * width * max(frames, 1) > MAX_PIXELS:
        raise InputError(f"{source}: declares {width}x{height}" + (f"x{frames} frames" if frames > 1 else "")
                         + f" pixels, more than dnh reads ({MAX_PIXELS:,})",
                         hint="downsample the image first (a decompression bomb is refused the same way)")


def to_unit(pixels: np.ndarray, source: str) -> np.ndarray:
    """Pixels of a known depth -> float32 in [0, 1] (uint8 / 255, uint16 / 65535, floats as
    they are); other integers must lie within 0..255 and count as 8-bit."""
    array = np.asarray(pixels)
    if array.dtype in FULL_RANGE:
        return array.astype(np.float32) / np.float32(FULL_RANGE[array.dtype])
    if array.dtype.kind in "iu":
        if array.size and (array.min() < 0 or array.max() > 255):
            raise InputError(f"{source}: integer pixels must be within 0..255 (or uint16)",
                             hint="save 8-bit pixels as uint8 and 16-bit ones as uint16")
        return array.astype(np.float32) / np.float32(255.0)
    if array.dtype.kind == "f":
        if not np.isfinite(array).all():
            raise InputError(f"{source}: holds NaN or infinite values")
        if array.size and (array.min() < 0 or array.max() > 1):
            raise InputError(f"{source}: float pixels must be within [0, 1]",
                             hint="save 0-255 pixels as uint8, or divide by 255")
        return array.astype(np.float32)
    raise InputError(f"{source}: unsupported pixel type {array.dtype}",
                     hint="use uint8, uint16 or float 0-1 pixels")


def fit(pixels: np.ndarray, side: int, source: str) -> np.ndarray:
    """One picture (H, W) or (H, W, C) with C in 1, 3, 4 (alpha is ignored), of any depth ->
    uint8 grey (side, side) by the rule of this module."""
    array = np.asarray(pixels)
    if array.ndim == 3 and array.shape[2] in (1, 3, 4):
        array = array[..., 0] if array.shape[2] == 1 else array[..., :3]
    if array.ndim not in (2, 3):
        raise InputError(f"{source}: not a picture (shape {array.shape})")
    height, width = array.shape[:2]
    if array.size == 0:
        raise InputError(f"{source}: holds no pixels (shape {array.shape})")
    if (height, width) == (side, side) and array.dtype == np.uint8:
        return to_grey(array[None])[0]  # as before this rule: exactly the stored bytes
    unit = to_unit(array, source)
    if (height, width) != (side, side):
        check_size(height, width, source)
        unit = _crop_resize(unit, side)
    rounded = np.rint(np.clip(unit, 0.0, 1.0) * 255.0).astype(np.uint8)
    return to_grey(rounded[None])[0]


def _crop_resize(unit: np.ndarray, side: int) -> np.ndarray:
    """Centre crop to the short side, then Pillow's bicubic resize of each channel in float."""
    from PIL import Image

    height, width = unit.shape[:2]
    short = min(height, width)
    top, left = (height - short) // 2, (width - short) // 2
    square = unit[top:top + short, left:left + short]
    channels = [square] if square.ndim == 2 else [square[..., c] for c in range(square.shape[2])]
    resized = [np.asarray(Image.fromarray(np.ascontiguousarray(c, np.float32))
                          .resize((side, side), Image.Resampling.BICUBIC)) for c in channels]
    return resized[0] if square.ndim == 2 else np.stack(resized, axis=-1)
