"""The deleted ids of a hash database: one file of sorted little-endian uint64 ids, named in
the manifest ("deleted": name, count, bytes, crc32) and replaced whole by every delete.

A delete writes the new file, fsyncs it, then commits a manifest naming it (the same commit
as an append), so a kill leaves the ids deleted before or after, never a mix. A deleted id
is never returned from the moment the commit returns; its code, key and metadata stay in
their segment until a compaction rewrites that segment without them (`purge`). The id itself
is never reused and stays in this file, so ids keep naming the same items forever.
"""

from __future__ import annotations

import re
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from dnhcli.errors import DataError
from dnhcli.stores.segments import FileWriter

ID_DTYPE = np.dtype("<u8")
DELETED_NAME = re.compile(r"^del-\d{6}\.ids$")
PURGED = b'{"deleted":true}\n'  # the metadata line of a purged item
_HINT = "the database was damaged or edited; rebuild it (e.g. `dnh hash` again)"


def deletion_name(number: int) -> str:
    return f"del-{number:06d}.ids"


def write_deleted(folder: Path, name: str, ids: np.ndarray) -> dict[str, Any]:
    """Write the sorted unique `ids` to a new file; returns the manifest entry."""
    writer = FileWriter(folder / name)
    data = np.ascontiguousarray(ids, dtype=ID_DTYPE)
    writer.write_half_then_crash(data, "delete-mid-ids")
    writer.write(data)
    return {"name": name, "count": len(data), **writer.finish()}


def read_deleted(folder: Path, entry: dict[str, Any] | None, count: int) -> np.ndarray:
    """The deleted ids (sorted int64) of a manifest entry, checked; DataError names the file."""
    if not entry:
        return np.zeros(0, np.int64)
    try:
        check_entry(entry)
    except (KeyError, TypeError, ValueError) as exc:
        raise DataError(f"hash database manifest in {folder} is inconsistent ({exc})", hint=_HINT) from None
    path = folder / entry["name"]
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DataError(f"cannot read hash database file {path}: {exc.strerror}", hint=_HINT) from None
    if len(data) != entry["bytes"] or len(data) != ID_DTYPE.itemsize * entry["count"]:
        raise DataError(f"hash database file {path} has {len(data)} bytes, the manifest expects "
                        f"{entry['bytes']} (truncated or changed)", hint=_HINT)
    if f"{zlib.crc32(data):08x}" != entry["crc32"]:
        raise DataError(f"hash database file {path} fails its checksum (crc32): it is corrupt or "
                        "was changed", hint=_HINT)
    ids = np.frombuffer(data, ID_DTYPE).astype(np.int64)
    if len(ids) and (np.any(ids[1:] <= ids[:-1]) or ids[0] < 0 or ids[-1] >= count):
        raise DataError(f"hash database file {path} is not a sorted list of ids below {count}",
                        hint=_HINT)
    return ids


def check_entry(entry: Any) -> None:
    """ValueError unless `entry` is None or a well-formed manifest entry of deleted ids."""
    if entry is None:
        return
    if not DELETED_NAME.match(entry["name"]) or not isinstance(entry["count"], int) or (
            entry["bytes"] != ID_DTYPE.itemsize * entry["count"] or not isinstance(entry["crc32"], str)):
        raise ValueError(f"bad deleted-ids entry {entry!r:.120}")


def is_deleted(deleted: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Which of `ids` are in the sorted `deleted`."""
    if not len(deleted):
        return np.zeros(np.shape(ids), bool)
    at = np.searchsorted(deleted, ids).clip(0, len(deleted) - 1)
    return deleted[at] == ids
