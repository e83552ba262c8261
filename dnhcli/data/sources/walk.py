"""Every image under a folder, read and keyed exactly as `dnh hash` reads and keys it
(`dnhcli.data.images.read_file`), with what the label sources need of its file: the path
relative to the folder and, for DICOM, a few header attributes.

A DICOM file's PatientID is read into memory to keep a patient's images in one split; it is
never stored (the dataset holds a patient number local to it) and the patient's name is
never asked for.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dnhcli.data.dicom import is_dicom
from dnhcli.data.images import IMAGE_SUFFIXES, expand_roots, read_file
from dnhcli.data.pooling import IMAGE_SIDE
from dnhcli.errors import DnhError, InputError
from dnhcli.progress import ProgressFn, no_progress

ON_ERROR = ("stop", "skip")


@dataclass(frozen=True)
class Item:
    """One image: its key (as `dnh hash` gives it), file, path relative to the folder (POSIX),
    index in the file (a stack's image or a frame) and the file's DICOM attributes asked for."""

    key: str
    file: Path
    relative: str
    index: int | None
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def base_key(self) -> str:
        """The key of the whole file (a stack's or multi-frame file's key without `[i]`)."""
        return self.key.rsplit("[", 1)[0] if self.key.endswith("]") else self.key


@dataclass(frozen=True)
class Failure:
    """A file that could not be read, or an image with no label: what it is and why."""

    source: str
    error: str

    def to_json(self) -> dict[str, str]:
        return {"source": self.source, "error": self.error}


@dataclass
class Walked:
    """The images read (N, side, side) uint8, one `Item` each, and the files refused."""

    images: np.ndarray
    items: list[Item]
    failures: list[Failure]


def check_on_error(value: str) -> str:
    if value not in ON_ERROR:
        raise InputError(f"--on-error takes stop or skip, got {value!r}")
    return value


def walk(root: Path, tags: Sequence[str] = (), on_error: str = "stop", side: int = IMAGE_SIDE,
         progress: ProgressFn = no_progress) -> Walked:
    """Read every image under `root` (its subfolders too, hidden ones skipped, in path order).
    A file that cannot be read stops the run with one line naming it (`on_error="stop"`) or is
    left out and listed (`"skip"`). `tags` are DICOM keywords to read from each DICOM header."""
    check_on_error(on_error)
    if not root.is_dir():
        raise InputError(f"--images {root}: not a folder", hint="give the folder that holds the images")
    files = expand_roots([root])
    images: list[np.ndarray] = []
    items: list[Item] = []
    failures: list[Failure] = []
    for done, (path, _) in enumerate(files, 1):
        relative = path.relative_to(root).as_posix()
        try:
            header = dicom_header(path, tags) if tags and _is_dicom_file(path) else {}
            pieces = list(read_file(path, root, side))  # the whole file, or none of it
        except DnhError as exc:
            if on_error == "stop":
                raise InputError(exc.message, hint=exc.hint or "fix or remove the file, or rerun with "
                                 "--on-error skip to leave unreadable files out") from None
            failures.append(Failure(str(path), exc.message))
            continue
        finally:
            progress("read images", done, len(files))
        for pixels, metas in pieces:
            images.append(pixels)
            items.extend(Item(m["key"], path, relative, _index(m), header) for m in metas)
    stacked = np.concatenate(images) if images else np.zeros((0, side, side), np.uint8)
    return Walked(stacked, items, failures)


def _index(meta: dict[str, object]) -> int | None:
    """The image's place in its file: a stack's index or a multi-frame file's frame."""
    value = meta.get("index") if meta.get("index") is not None else meta.get("frame")
    return int(value) if isinstance(value, int) else None


def _is_dicom_file(path: Path) -> bool:
    """The rule of `read_file`: a file is read as DICOM unless its suffix names another kind."""
    suffix = path.suffix.lower()
    return suffix != ".npy" and suffix not in IMAGE_SUFFIXES and is_dicom(path)


def dicom_header(path: Path, keywords: Sequence[str]) -> dict[str, str]:
    """The values (as text, stripped; "" when absent) of `keywords` in a DICOM file's header,
    read without its pixels."""
    import pydicom

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            header = pydicom.dcmread(path, force=True, stop_before_pixels=True)
        return {word: str(header.get(word, "") or "").strip() for word in keywords}
    except Exception as exc:  # noqa: BLE001 - any header fault is this file's, named in one line
        raise InputError(f"{path}: not a readable DICOM header ({type(exc).__name__}: {exc})") from None


def check_keywords(keywords: Sequence[str]) -> None:
    """Refuse a DICOM keyword that the standard's dictionary does not know."""
    from pydicom.datadict import tag_for_keyword

    for word in keywords:
        if tag_for_keyword(word) is None:
            raise InputError(f"--label-tag {word!r} is not a DICOM keyword",
                             hint="use a keyword of the DICOM dictionary, e.g. Modality or BodyPartExamined")
