"""Reading and validating images to hash or to query with, streamed in chunks.

Accepted inputs, all turned into uint8 grey (N, 28, 28) exactly as prepared datasets are:

- `.npy`: one image (28, 28), (28, 28, 1) or (28, 28, 3), or a stack (N, 28, 28[, 1 or 3]);
  uint8 0-255 pixels, other integers within 0-255, or floats within [0, 1] (scaled by 255);
  read memory-mapped and never unpickled.
- `.png` (and other formats Pillow reads): 28x28, converted to grey.
- a folder: its `.npy` and `.png` files, in name order.
- a split of a prepared dataset, keeping organ, disease and labels.

RGB becomes grey with the BT.601 luma weights used by `prepare-data`.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dnhcli.data.dataset import PreparedDataset
from dnhcli.data.defaults import CHUNK as CHUNK
from dnhcli.data.pooling import IMAGE_SIDE, to_grey
from dnhcli.errors import InputError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
SHAPES = "(28, 28), (28, 28, 1), (28, 28, 3) or a stack (N, 28, 28[, 1 or 3])"
RESIZE = "resize the images to 28x28 (dnh models read 28x28 MedMNIST-style images)"


@dataclass
class ImageChunk:
    """Up to CHUNK images with one metadata dict each (source, and labels when known)."""

    images: np.ndarray
    metadata: list[dict[str, Any]] = field(default_factory=list)


def normalize(array: np.ndarray, source: str) -> np.ndarray:
    """Any accepted array -> uint8 (N, 28, 28); an `InputError` naming `source` otherwise."""
    side = (IMAGE_SIDE, IMAGE_SIDE)
    if array.ndim == 2:
        array = array[None]
    elif array.ndim == 3 and array.shape[:2] == side and array.shape[2] in (1, 3):
        array = array[None]
    if array.ndim == 4 and array.shape[3] == 1:
        array = array[..., 0]
    if not (array.ndim in (3, 4) and array.shape[1:3] == side
            and (array.ndim == 3 or array.shape[3] == 3)):
        raise InputError(f"{source}: images must be {SHAPES}, got shape {array.shape}",
                         hint=RESIZE)
    if array.shape[0] == 0:
        raise InputError(f"{source}: holds no image (shape {array.shape})")
    array = _to_uint8(np.asarray(array), source)
    return to_grey(array) if array.ndim == 4 else array


def _to_uint8(array: np.ndarray, source: str) -> np.ndarray:
    if array.dtype == np.uint8:
        return array
    if array.dtype.kind in "iu":
        if array.min() < 0 or array.max() > 255:
            raise InputError(f"{source}: integer pixels must be within 0..255")
        return array.astype(np.uint8)
    if array.dtype.kind == "f":
        if not np.isfinite(array).all():
            raise InputError(f"{source}: holds NaN or infinite values")
        if array.min() < 0 or array.max() > 1:
            raise InputError(f"{source}: float pixels must be within [0, 1]",
                             hint="save 0-255 pixels as uint8, or divide by 255")
        return np.rint(array * 255.0).astype(np.uint8)
    raise InputError(f"{source}: unsupported pixel type {array.dtype}",
                     hint="use uint8 0-255 or float 0-1 pixels")


def _is_stack(array: np.ndarray) -> bool:
    """(N, 28, 28) or (N, 28, 28, C), rather than one (28, 28[, C]) image."""
    return array.ndim == 4 or (array.ndim == 3 and array.shape[1:] == (IMAGE_SIDE, IMAGE_SIDE))


def _load_npy(path: Path) -> np.ndarray:
    try:
        with warnings.catch_warnings():  # numpy warns before failing on a header of overflowing size
            warnings.simplefilter("ignore", RuntimeWarning)
            return np.load(path, mmap_mode="r", allow_pickle=False)
    except ValueError as exc:
        if "allow_pickle" in str(exc) or "Object arrays" in str(exc):
            raise InputError(f"{path}: holds Python objects; dnh never unpickles files",
                             hint="save a plain numeric array") from None
        raise InputError(f"{path}: not a readable .npy file ({exc})") from None
    except (OSError, EOFError, OverflowError) as exc:  # OverflowError: a negative size in the header
        raise InputError(f"{path}: not a readable .npy file ({exc})") from None


def _load_picture(path: Path) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():  # Pillow warns of huge sizes; they are refused before decoding
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as picture:
                if picture.size != (IMAGE_SIDE, IMAGE_SIDE):
                    raise InputError(f"{path}: images must be {IMAGE_SIDE}x{IMAGE_SIDE} pixels, got "
                                     f"{picture.width}x{picture.height}", hint=RESIZE)
                grey = np.asarray(picture.convert("L"))
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError) as exc:
        raise InputError(f"{path}: not a readable image ({exc})") from None
    return grey


def expand_paths(paths: Sequence[Path]) -> list[Path]:
    """Files to read: each path itself, or a folder's image and .npy files in name order."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = sorted(p for p in path.iterdir()
                           if p.is_file() and p.suffix.lower() in (".npy", *IMAGE_SUFFIXES))
            if not found:
                raise InputError(f"{path}: folder holds no .npy or image files")
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            raise InputError(f"input not found: {path}")
    return files


def iter_files(paths: Sequence[Path], chunk: int = CHUNK) -> Iterator[ImageChunk]:
    """Stream images from files and folders, `chunk` at a time: at most about two chunks are
    in memory, whatever the size of the input (`.npy` files are memory-mapped)."""
    pending: list[tuple[np.ndarray, list[dict[str, Any]]]] = []
    size = 0
    for piece in _pieces(paths, chunk):
        pending.append(piece)
        size += len(piece[0])
        while size >= chunk:
            out, size = _take(pending, chunk), size - chunk
            yield out
    if size > 0:
        yield _take(pending, size)


def _pieces(paths: Sequence[Path], chunk: int) -> Iterator[tuple[np.ndarray, list[dict[str, Any]]]]:
    """Normalised images with their metadata, at most `chunk` at a time, file by file."""
    for path in expand_paths(paths):
        absolute = str(path.absolute())
        if path.suffix.lower() != ".npy":
            yield normalize(_load_picture(path), str(path)), [{"source": str(path), "file": absolute,
                                                                "index": None}]
            continue
        raw = _load_npy(path)
        stacked = _is_stack(raw)
        if stacked and len(raw) == 0:
            raise InputError(f"{path}: holds no image (shape {raw.shape})")
        for start in range(0, len(raw), chunk) if stacked else range(1):
            images = normalize(raw[start:start + chunk] if stacked else raw, str(path))
            yield images, [{"source": f"{path}[{start + i}]" if stacked else str(path),
                            "file": absolute, "index": start + i if stacked else None}
                           for i in range(len(images))]


def _take(pending: list[tuple[np.ndarray, list[dict[str, Any]]]], count: int) -> ImageChunk:
    """The first `count` pending images (removed from `pending`), copied into one chunk."""
    taken: list[tuple[np.ndarray, list[dict[str, Any]]]] = []
    while count > 0:
        images, meta = pending.pop(0)
        if len(images) > count:
            pending.insert(0, (images[count:], meta[count:]))
            images, meta = images[:count], meta[:count]
        taken.append((images, meta))
        count -= len(images)
    return ImageChunk(images=np.concatenate([t[0] for t in taken]), metadata=[m for t in taken for m in t[1]])


def iter_split(dataset: PreparedDataset, split: str, chunk: int = CHUNK) -> Iterator[ImageChunk]:
    """Stream a split of a prepared dataset with its organ, disease and label vector."""
    data = dataset.split(split)
    organs, path = dataset.organ_names, str(dataset.path.absolute())
    for start in range(0, len(data), chunk):
        labels = np.asarray(data.labels[start:start + chunk])
        raw = np.asarray(data.raw_labels[start:start + chunk])
        meta = []
        for i, (klass, organ, disease) in enumerate(labels.tolist()):
            vector = [int(v) for v in raw[i] if v >= 0]
            meta.append({"source": f"{split}[{start + i}]", "dataset": path, "split": split,
                         "index": start + i, "organ": organs[organ],
                         "disease": dataset.disease_names(organ)[disease],
                         "class": dataset.class_names[klass], "labels": vector})
        yield ImageChunk(images=np.asarray(data.images[start:start + chunk]), metadata=meta)


def count_inputs(paths: Sequence[Path]) -> int:
    """How many images the files hold (read from .npy headers, so it is cheap)."""
    total = 0
    for path in expand_paths(paths):
        if path.suffix.lower() == ".npy":
            raw = _load_npy(path)
            total += len(raw) if _is_stack(raw) else 1
        else:
            total += 1
    return total
