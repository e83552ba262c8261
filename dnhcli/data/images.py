"""Reading and validating images to hash or to query with, streamed in chunks.

Accepted inputs, all turned into the model's uint8 grey (N, side, side) by the one rule of
`dnhcli.data.preprocess` (28 x 28 inputs stay exactly as they are):

- `.npy`: one picture (H, W), (H, W, 1), (H, W, 3) or (H, W, 4), or a stack (N, H, W[, C]);
  uint8, uint16 (16-bit), other integers within 0-255, or floats within [0, 1]; read
  memory-mapped and never unpickled.
- pictures Pillow reads (PNG, JPEG, BMP, TIFF): 8- and 16-bit grey, RGB, RGBA, palette.
- DICOM (`.dcm`, or any file with the DICOM preamble): every frame, through
  `dnhcli.data.dicom`.
- a folder: those files in it and its subfolders (hidden ones skipped), in path order.
- a split of a prepared dataset, keeping organ, disease and labels.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from dnhcli.data import keys, preprocess
from dnhcli.data.dataset import PreparedDataset
from dnhcli.data.defaults import CHUNK as CHUNK
from dnhcli.data.dicom import is_dicom, read_dicom
from dnhcli.data.pooling import IMAGE_SIDE, to_grey
from dnhcli.errors import InputError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
FILE_KINDS = ".npy, .png, .jpg, .bmp, .tif or DICOM"
Stored = Callable[[Sequence[str]], np.ndarray]  # keys -> which are stored already (bool array)


@dataclass
class ImageChunk:
    """Up to CHUNK images with one metadata dict each (source, and labels when known)."""

    images: np.ndarray
    metadata: list[dict[str, Any]] = field(default_factory=list)


def normalize(array: np.ndarray, source: str, side: int = IMAGE_SIDE) -> np.ndarray:
    """One picture or a stack (see the module doc) -> uint8 (N, side, side); an `InputError`
    naming `source` otherwise."""
    array = np.asarray(array)
    if not is_stack(array):
        array = array[None]
    if array.ndim not in (3, 4) or (array.ndim == 4 and array.shape[3] not in (1, 3, 4)):
        raise InputError(f"{source}: not a picture or a stack of pictures (shape {array.shape})",
                         hint="pictures are (H, W), (H, W, 3) or (H, W, 4); stacks (N, H, W[, C])")
    if array.shape[0] == 0 or array.size == 0:
        raise InputError(f"{source}: holds no image (shape {array.shape})")
    if array.shape[1:3] == (side, side) and array.dtype == np.uint8:  # the fast path, as before
        return to_grey(array[..., :3] if array.ndim == 4 and array.shape[3] != 1 else
                       array[..., 0] if array.ndim == 4 else array)
    return np.stack([preprocess.fit(picture, side, source) for picture in array])


def is_stack(array: np.ndarray) -> bool:
    """(N, H, W) or (N, H, W, C), rather than one (H, W[, C]) picture."""
    return array.ndim == 4 or (array.ndim == 3 and array.shape[2] not in (1, 3, 4))


def load_npy(path: Path | BinaryIO, source: str | None = None) -> np.ndarray:
    """A `.npy` file, memory-mapped (or, for an open binary file named `source`, read)."""
    path_name = source or path
    try:
        with warnings.catch_warnings():  # numpy warns before failing on a header of overflowing size
            warnings.simplefilter("ignore", RuntimeWarning)
            return np.load(path, mmap_mode="r" if isinstance(path, Path) else None, allow_pickle=False)
    except ValueError as exc:
        if "allow_pickle" in str(exc) or "Object arrays" in str(exc):
            raise InputError(f"{path_name}: holds Python objects; dnh never unpickles files",
                             hint="save a plain numeric array") from None
        raise InputError(f"{path_name}: not a readable .npy file ({exc})") from None
    except (OSError, EOFError, OverflowError) as exc:  # OverflowError: a negative size in the header
        raise InputError(f"{path_name}: not a readable .npy file ({exc})") from None


def _npy_from_bytes(stream: io.BytesIO, name: str) -> np.ndarray:
    """A `.npy` file held in memory, its header checked against its length before numpy
    allocates the array it declares."""
    from numpy.lib import format as npy

    try:
        version = npy.read_magic(stream)
        header = npy.read_array_header_1_0 if version == (1, 0) else npy.read_array_header_2_0
        shape, _, dtype = header(stream)
    except (ValueError, OSError, EOFError, SyntaxError, TypeError) as exc:
        raise InputError(f"{name}: not a readable .npy file ({exc})") from None
    if dtype.hasobject:
        raise InputError(f"{name}: holds Python objects; dnh never unpickles files",
                         hint="save a plain numeric array")
    declared = int(np.prod(shape, dtype=object)) * dtype.itemsize
    if declared > len(stream.getbuffer()) - stream.tell():
        raise InputError(f"{name}: truncated .npy file (its header declares {declared:,} bytes of "
                         f"data, the file holds {len(stream.getbuffer()) - stream.tell():,})")
    stream.seek(0)
    return load_npy(stream, name)


def _readable(path: Path) -> bool:
    suffix = path.suffix.lower()
    return suffix in (".npy", *IMAGE_SUFFIXES) or is_dicom(path)


def expand_paths(paths: Sequence[Path]) -> list[Path]:
    """Files to read: each path itself, or a folder's readable files (subfolders included,
    hidden ones skipped) in path order."""
    return [file for file, _ in expand_roots(paths)]


def expand_roots(paths: Sequence[Path]) -> list[tuple[Path, Path]]:
    """Files to read with the root their key is relative to (the folder given, or the file's
    own folder)."""
    files: list[tuple[Path, Path]] = []
    for path in paths:
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and not any(
                part.startswith(".") for part in p.relative_to(path).parts) and _readable(p))
            if not found:
                raise InputError(f"{path}: folder holds no {FILE_KINDS} files")
            files.extend((file, path) for file in found)
        elif path.is_file():
            files.append((path, path.parent))
        else:
            raise InputError(f"input not found: {path}")
    return files


def iter_files(paths: Sequence[Path], chunk: int = CHUNK, side: int = IMAGE_SIDE,
               stored: Stored | None = None) -> Iterator[ImageChunk]:
    """Stream images from files and folders as the model's (side x side) input, `chunk` at a
    time, each with its stable key (`dnhcli.data.keys`) in its metadata: at most about two
    chunks are in memory, whatever the size of the input (`.npy` files are memory-mapped).
    Images whose key `stored(keys)` marks are left out, and a file whose images are all
    stored is not decoded."""
    pending: list[tuple[np.ndarray, list[dict[str, Any]]]] = []
    size = 0
    for piece in _pieces(paths, chunk, side, stored or _nothing_stored):
        pending.append(piece)
        size += len(piece[0])
        while size >= chunk:
            out, size = _take(pending, chunk), size - chunk
            yield out
    if size > 0:
        yield _take(pending, size)


def _nothing_stored(keys: Sequence[str]) -> np.ndarray:
    return np.zeros(len(keys), bool)


def _pieces(paths: Sequence[Path], chunk: int, side: int, stored: Stored
            ) -> Iterator[tuple[np.ndarray, list[dict[str, Any]]]]:
    """Normalised images with their metadata, at most `chunk` at a time, file by file; the
    images already stored are left out (and not decoded where a whole file is stored)."""
    for path, root in expand_roots(paths):
        yield from read_file(path, root, side, chunk, stored)


def read_file(path: Path, root: Path, side: int = IMAGE_SIDE, chunk: int = CHUNK,
              stored: Stored | None = None) -> Iterator[tuple[np.ndarray, list[dict[str, Any]]]]:
    """One file's images as the model's (side x side) input, at most `chunk` at a time, each
    with its metadata and its key relative to `root` (as `dnh hash` keys it); an `InputError`
    naming the file where it cannot be read. `prepare-data --images` reads files with it."""
    stored = stored or _nothing_stored
    absolute, base = str(path.absolute()), keys.file_key(path, root)
    if path.suffix.lower() == ".npy":
        yield from _npy_pieces(path, absolute, base, chunk, side, stored)
    elif path.suffix.lower() in IMAGE_SUFFIXES or not is_dicom(path):
        if not stored([base])[0]:
            yield normalize(load_picture(path), str(path), side), [
                {"source": str(path), "file": absolute, "index": None, "key": base}]
    else:
        uid, count = keys.dicom_instance(path)
        names = keys.item_keys(f"dicom:{uid}" if uid else base, count, count > 1)
        keep = ~stored(names)
        if not keep.any():
            return
        frames, metas = read_dicom(path)
        if len(frames) != len(names):  # the header and the pixels disagree: the pixels win
            names = keys.item_keys(f"dicom:{uid}" if uid else base, len(frames), len(frames) > 1)
            keep = ~stored(names)
        chosen = np.flatnonzero(keep)
        if len(chosen):
            images = np.stack([preprocess.fit(frames[i], side, str(path)) for i in chosen])
            yield images, [{"source": str(path) if len(frames) == 1 else f"{path}[{i}]",
                            "file": absolute, "index": None, **metas[i], "key": names[i]}
                           for i in chosen]


def _npy_pieces(path: Path, absolute: str, base: str, chunk: int, side: int, stored: Stored
                ) -> Iterator[tuple[np.ndarray, list[dict[str, Any]]]]:
    raw = load_npy(path)
    stacked = is_stack(raw)
    if stacked and len(raw) == 0:
        raise InputError(f"{path}: holds no image (shape {raw.shape})")
    for start in range(0, len(raw), chunk) if stacked else range(1):
        count = min(chunk, len(raw) - start) if stacked else 1
        names = [f"{base}[{start + i}]" for i in range(count)] if stacked else [base]
        keep = np.flatnonzero(~stored(names))
        if not len(keep):
            continue
        images = normalize(raw[start:start + chunk] if stacked else raw, str(path), side)
        yield images[keep], [{"source": f"{path}[{start + i}]" if stacked else str(path),
                              "file": absolute, "index": start + i if stacked else None,
                              "key": names[i]} for i in keep.tolist()]


def load_one(path: Path, index: int | None = None, frame: int | None = None,
             side: int = IMAGE_SIDE) -> np.ndarray:
    """One stored image again, as the model saw it: item `index` of a `.npy` stack, `frame` of
    a multi-frame DICOM, or the picture itself."""
    if path.suffix.lower() == ".npy":
        raw = load_npy(path)
        return normalize(raw[index] if index is not None else raw, str(path), side)[0]
    if path.suffix.lower() not in IMAGE_SUFFIXES and is_dicom(path):
        frames, _ = read_dicom(path)
        return preprocess.fit(frames[frame or 0], side, str(path))
    return normalize(load_picture(path), str(path), side)[0]


def load_picture(path: Path | BinaryIO, source: str | None = None) -> np.ndarray:
    """A picture file (a path, or an open binary file named `source` in messages) read by
    Pillow at its own depth: uint8 grey or RGB, uint16 grey (16-bit), or float32 grey; its size
    is checked before its pixels are decoded."""
    from PIL import Image, UnidentifiedImageError

    name = source or str(path)
    try:
        with warnings.catch_warnings():  # Pillow warns of huge sizes; they are refused before decoding
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as picture:
                preprocess.check_size(picture.height, picture.width, name,
                                      getattr(picture, "n_frames", 1))
                if getattr(picture, "n_frames", 1) > 1:
                    raise InputError(f"{name}: holds {picture.n_frames} pages or frames",
                                     hint="save each page as its own file (multi-frame DICOM is read "
                                          "frame by frame)")
                return _pixels(picture, name)
    except Image.DecompressionBombError as exc:
        raise InputError(f"{name}: declares more pixels than dnh reads ({exc})".replace(
            ", could be decompression bomb DOS attack", ""),
                         hint="downsample the image first (a decompression bomb is refused the same way)"
                         ) from None
    except (UnidentifiedImageError, OSError, ValueError,
            SyntaxError, EOFError) as exc:
        # Pillow names an open file by its repr
        reason = str(exc).replace(f"image file {path!r}", "the image format").replace(repr(path), "the file")
        raise InputError(f"{name}: not a readable image ({reason})") from None


def decode_upload(data: bytes, name: str, side: int = IMAGE_SIDE) -> tuple[np.ndarray, list[str]]:
    """An uploaded file held in memory -> the model's (N, side, side) uint8 input and one query
    name per image. The kind is told from the content (DICOM preamble, `.npy` magic, else
    Pillow) or, for DICOM without a preamble, the `.dcm` suffix of `name`; nothing is written to
    disk and `.npy` files are never unpickled."""
    if not data:
        raise InputError(f"{name}: the file is empty", hint=f"send a {FILE_KINDS} file")
    stream = io.BytesIO(data)
    if data[128:132] == b"DICM" or Path(name).suffix.lower() in (".dcm", ".dicom"):
        frames, _ = read_dicom(stream, name)
        images = np.stack([preprocess.fit(frame, side, name) for frame in frames])
    elif data.startswith(b"\x93NUMPY"):
        images = normalize(_npy_from_bytes(stream, name), name, side)
    elif Path(name).suffix.lower() == ".npy":
        raise InputError(f"{name}: not a .npy file (it does not start with the .npy magic bytes)",
                         hint="save arrays with numpy.save; dnh never unpickles files")
    else:
        images = normalize(load_picture(stream, name), name, side)
    names = [name] if len(images) == 1 else [f"{name}[{i}]" for i in range(len(images))]
    return images, names


def _pixels(picture: Any, path: str) -> np.ndarray:
    mode = picture.mode
    if mode.startswith("I;16"):
        return np.asarray(picture).astype(np.uint16)
    if mode == "I":  # 32-bit integers: 16-bit PNGs open so in some Pillow versions
        array = np.asarray(picture)
        if array.size and (array.min() < 0 or array.max() > 65535):
            raise InputError(f"{path}: 32-bit integer pixels outside 0..65535",
                             hint="save 8- or 16-bit images")
        return array.astype(np.uint16)
    if mode == "F":
        return np.asarray(picture, np.float32)
    if mode in ("L", "RGB"):
        return np.asarray(picture)
    if mode in ("1", "LA", "La") or (mode in ("P", "PA") and _grey_palette(picture)):
        return np.asarray(picture.convert("L"))
    return np.asarray(picture.convert("RGB"))  # palette, RGBA (alpha ignored), CMYK, YCbCr, ...


def _grey_palette(picture: Any) -> bool:
    colours = picture.getpalette() or []
    return all(colours[i] == colours[i + 1] == colours[i + 2] for i in range(0, len(colours) - 2, 3))


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


def iter_split(dataset: PreparedDataset, split: str, chunk: int = CHUNK,
               stored: Stored | None = None) -> Iterator[ImageChunk]:
    """Stream a split of a prepared dataset with its organ, disease, label vector and key;
    items whose key `stored(keys)` marks are left out."""
    data = dataset.split(split)
    path = str(dataset.path.absolute())
    stored = stored or _nothing_stored
    every = dataset.item_keys(split)
    for start in range(0, len(data), chunk):
        names = every[start:start + chunk]
        keep = np.flatnonzero(~stored(names))
        labels = np.asarray(data.labels[start:start + chunk])
        raw = np.asarray(data.raw_labels[start:start + chunk])
        meta = []
        for i, row in enumerate(labels.tolist()):
            meta.append({"source": f"{split}[{start + i}]", "dataset": path, "split": split,
                         "index": start + i, **label_metadata(dataset, row, raw[i]), "key": names[i]})
        if len(keep):
            images = np.asarray(data.images[start:start + chunk])
            yield ImageChunk(images=images[keep], metadata=[meta[i] for i in keep.tolist()])


def label_metadata(dataset: PreparedDataset, row: Sequence[int], raw: np.ndarray) -> dict[str, Any]:
    """An item's organ, disease, class and label vector by name; nothing for an unlabelled item."""
    klass, organ, disease = (int(v) for v in row)
    if klass < 0:
        return {}
    return {"organ": dataset.organ_names[organ], "disease": dataset.disease_names(organ)[disease],
            "class": dataset.class_names[klass], "labels": [int(v) for v in raw if v >= 0]}


def count_inputs(paths: Sequence[Path]) -> int:
    """How many images the files hold (from .npy and DICOM headers, so it is cheap)."""
    total = 0
    for path in expand_paths(paths):
        if path.suffix.lower() == ".npy":
            raw = load_npy(path)
            total += len(raw) if is_stack(raw) else 1
        elif path.suffix.lower() not in IMAGE_SUFFIXES and is_dicom(path):
            total += keys.dicom_instance(path)[1]
        else:
            total += 1
    return total
