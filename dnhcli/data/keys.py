"""Stable keys: an image ingested again gets the key it got the first time.

- DICOM: `dicom:<SOPInstanceUID>`, with `[<frame>]` for each frame of a multi-frame file; the
  instance UID names the image wherever the file lies (a PACS export, a copy, a re-send).
- any other file: `file:<path relative to the ingested root>#sha256:<first 32 hex digits of
  the file's sha256>`, with `[<index>]` for each image of a `.npy` stack. The root is the
  folder given on the command line (a file given by itself has its folder as root), so the
  same archive mounted elsewhere keeps its keys, and a file changed in place gets a new key.
- a split of a prepared dataset: `dataset:<first 16 hex digits of its fingerprint>/<split>/<index>`.

Keys are computed from headers and file bytes before any pixel is decoded, so a re-run on a
grown folder decodes only the new images.
"""

from __future__ import annotations

import functools
import hashlib
import warnings
from pathlib import Path

HASH_CHUNK = 1 << 20


def file_key(path: Path, root: Path) -> str:
    """`file:<relative path>#sha256:<32 hex>` (see the module doc). `dnh hash` reads its inputs
    twice (a check, then the hashing), so the digest is remembered per file version."""
    try:
        relative = path.relative_to(root).as_posix() if path != root else path.name
    except ValueError:
        relative = path.name
    stat = path.stat()
    return f"file:{relative}#sha256:{_digest(str(path), stat.st_mtime_ns, stat.st_size)}"


@functools.lru_cache(maxsize=1 << 16)
def _digest(path: str, mtime_ns: int, size: int) -> str:
    """The first 32 hex digits of a file's sha256 (cached by path, mtime and size)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(HASH_CHUNK):
            digest.update(block)
    return digest.hexdigest()[:32]


def dicom_instance(path: Path) -> tuple[str | None, int]:
    """A DICOM file's SOPInstanceUID (None if absent or unreadable) and frame count, from its
    header only (read once per file version: `dnh hash` counts, then plans)."""
    try:
        stat = path.stat()
    except OSError:
        return None, 1
    return _instance(str(path), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=1 << 16)
def _instance(path: str, mtime_ns: int, size: int) -> tuple[str | None, int]:
    import pydicom

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            header = pydicom.dcmread(path, force=True, stop_before_pixels=True)
        uid = str(header.get("SOPInstanceUID", "") or "").strip() or None
        return uid, max(int(header.get("NumberOfFrames", 1) or 1), 1)
    except Exception:  # noqa: BLE001 - reading the pixels reports what is wrong with the file
        return None, 1


def item_keys(base: str, count: int, stacked: bool) -> list[str]:
    """The keys of a file's images: the base key alone, or one `[i]` per image of a stack."""
    return [f"{base}[{i}]" for i in range(count)] if stacked else [base]


def dataset_key(fingerprint: str, split: str, index: int) -> str:
    return f"dataset:{fingerprint[:16]}/{split}/{index}"
