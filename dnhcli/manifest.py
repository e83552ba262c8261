"""Artifact metadata shared by every dnh artifact: versions, checksums, JSON I/O."""

from __future__ import annotations

import hashlib
import json
import os
import platform
from importlib import metadata
from pathlib import Path
from typing import Any

from dnhcli import __version__
from dnhcli.errors import DataError

_VERSIONED = ("numpy", "torch", "medmnist", "onnx", "openvino")


def package_versions() -> dict[str, str]:
    """Versions of dnh, Python and the installed scientific packages (absent ones left out)."""
    versions = {"dnh": __version__, "python": platform.python_version()}
    for name in _VERSIONED:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def file_digest(path: Path, algorithm: str = "sha256", chunk: int = 1 << 20) -> str:
    """Hex digest of a file, read in chunks so large files cost no memory."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def canonical_json(data: Any) -> str:
    """Deterministic JSON text (sorted keys, two-space indent, trailing newline)."""
    return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def json_digest(data: Any) -> str:
    """sha256 of the canonical JSON form: a fingerprint for a manifest."""
    return hashlib.sha256(canonical_json(data).encode("utf-8")).hexdigest()


def write_json(path: Path, data: Any) -> None:
    """Write canonical JSON durably: a temporary file, fsync, then an atomic rename."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.write(canonical_json(data))
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def fsync_dir(path: Path) -> None:
    """fsync a folder, so that renames and new files in it survive a power cut."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_json(path: Path, what: str) -> dict[str, Any]:
    """Read a JSON object, turning a missing or malformed file into a `DataError`."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{what} not found: {path}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{what} is not readable JSON: {path} ({exc})") from None
    if not isinstance(data, dict):
        raise DataError(f"{what} is not a JSON object: {path}")
    return data
