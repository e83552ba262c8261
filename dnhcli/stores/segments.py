"""The files of a hash database: segments (written, memory-mapped, verified) and the manifest.

A segment holds the codes, metadata, key index and (format 3, where the database stores them)
re-rank vectors of the ids `start .. start+count-1` (layout and crash safety: `dnhcli.stores.hashdb`);
files are written once, fsynced, never modified. `crash_point` SIGKILLs the process when
`DNH_TEST_CRASH_AT` names the point reached (the crash tests).
"""

from __future__ import annotations

import json
import mmap
import os
import re
import signal
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dnhcli.errors import DataError
from dnhcli.manifest import canonical_json, json_digest
from dnhcli.stores.metadata import KEY_DTYPE, key_hash, key_index

FORMAT = "dnh-hashdb"
# 2 added the keys file, 3 the re-rank vectors file (in databases that store vectors); older
# databases are read and upgraded on write
FORMAT_VERSION = 3
READABLE_VERSIONS = (1, 2, 3)
MANIFEST = "manifest.json"
LOCK = ".lock"
CRASH_ENV = "DNH_TEST_CRASH_AT"
SEGMENT_NAME = re.compile(r"^seg-\d{6}$")
# kind -> file suffix; the manifest records bytes and crc32 per kind
SUFFIXES = {"codes": ".codes", "meta": ".meta.jsonl", "offsets": ".meta.idx", "keys": ".keys",
            "vectors": ".vec"}
PLAIN_KINDS = {"codes", "meta", "offsets", "keys"}  # a segment without re-rank vectors
LEGACY_KINDS = {"codes", "meta", "offsets"}  # a segment written by format version 1 (no keys)
KIND_SETS = (set(SUFFIXES), PLAIN_KINDS, LEGACY_KINDS)
OFFSET_DTYPE = np.dtype("<u8")
_CHUNK = 8 << 20
_CORRUPT_HINT = "the database was damaged or edited; rebuild it (e.g. `dnh hash` again)"


def crash_point(name: str) -> None:
    """Test hook: SIGKILL this process if `DNH_TEST_CRASH_AT` equals `name` (never set in use)."""
    if os.environ.get(CRASH_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)


def segment_name(number: int) -> str:
    return f"seg-{number:06d}"


def segment_files(folder: Path, name: str, kinds: Any = SUFFIXES) -> dict[str, Path]:
    """The file paths of segment `name`, keyed by kind (every kind unless `kinds` is given)."""
    return {kind: folder / f"{name}{SUFFIXES[kind]}" for kind in SUFFIXES if kind in kinds}


def is_segment_file(filename: str) -> bool:
    """Whether `filename` looks like a segment file (so an unreferenced one may be cleaned)."""
    return any(filename.endswith(s) and SEGMENT_NAME.match(filename[: -len(s)])
               for s in SUFFIXES.values())


def _bytes_view(data: bytes | np.ndarray) -> memoryview:
    return (data.data if isinstance(data, np.ndarray) else memoryview(data)).cast("B")


class FileWriter:
    """A new file written in pieces, with a running crc32, fsynced on close."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.handle = open(path, "wb")  # noqa: SIM115 - closed in finish()
        self.crc = 0
        self.bytes = 0

    def write(self, data: bytes | np.ndarray) -> None:
        view = _bytes_view(data)
        self.crc = zlib.crc32(view, self.crc)
        self.bytes += len(view)
        self.handle.write(view)

    def write_half_then_crash(self, data: bytes | np.ndarray, point: str) -> None:
        """Test hook: if `point` is the crash point, write half of `data`, then crash (a torn file)."""
        if os.environ.get(CRASH_ENV) == point:
            view = _bytes_view(data)
            self.handle.write(view[: len(view) // 2])
            self.handle.flush()
            crash_point(point)

    def finish(self) -> dict[str, Any]:
        self.handle.flush()
        os.fsync(self.handle.fileno())
        self.handle.close()
        return {"bytes": self.bytes, "crc32": f"{self.crc:08x}"}


def join_lines(records: list[bytes]) -> tuple[bytes, np.ndarray]:
    """JSON lines (one per item) and their (n+1) byte offsets."""
    offsets = np.zeros(len(records) + 1, dtype=OFFSET_DTYPE)
    np.cumsum([len(r) for r in records], out=offsets[1:])
    return b"".join(records), offsets


def write_segment(folder: Path, name: str, codes: np.ndarray, records: list[bytes],
                  keys: Sequence[str | None], vectors: np.ndarray | None = None) -> dict[str, Any]:
    """Write a new segment from in-memory codes, encoded metadata lines, each item's key (or
    None) and, in a database that stores them, re-rank vectors; returns its files' facts."""
    paths = segment_files(folder, name, PLAIN_KINDS if vectors is None else SUFFIXES)
    lines, offsets = join_lines(records)
    facts: dict[str, Any] = {}
    codes = np.ascontiguousarray(codes)
    writer = FileWriter(paths["codes"])
    writer.write_half_then_crash(codes, "mid-codes")
    writer.write(codes)
    facts["codes"] = writer.finish()
    crash_point("after-codes")
    writer = FileWriter(paths["meta"])
    writer.write_half_then_crash(lines, "mid-meta")
    writer.write(lines)
    facts["meta"] = writer.finish()
    crash_point("after-meta")
    writer = FileWriter(paths["offsets"])
    writer.write(offsets)
    facts["offsets"] = writer.finish()
    writer = FileWriter(paths["keys"])
    writer.write(key_index(keys))
    facts["keys"] = writer.finish()
    if vectors is not None:
        writer = FileWriter(paths["vectors"])
        writer.write(np.ascontiguousarray(vectors))
        facts["vectors"] = writer.finish()
    return facts


def merge_segments(folder: Path, name: str, sources: list[Segment],
                   purge: np.ndarray | None = None) -> dict[str, Any]:
    """Write a new segment holding `sources` back to back (streamed, ids in order). Items whose
    id is in the sorted `purge` keep their id but lose their data: a zero code, the metadata
    line `{"deleted":true}`, no key and a zero re-rank vector."""
    vectors = sources[0].vectors is not None
    paths = segment_files(folder, name, SUFFIXES if vectors else PLAIN_KINDS)
    parts = [_part(source, purge) for source in sources]
    facts: dict[str, Any] = {}
    for kind in ("codes", "meta", "vectors") if vectors else ("codes", "meta"):
        writer = FileWriter(paths[kind])
        for part in parts:
            for block in part[kind]():
                writer.write(block)
        facts[kind] = writer.finish()
        crash_point(f"compact-after-{kind}")
    writer = FileWriter(paths["offsets"])
    base = 0
    writer.write(np.zeros(1, dtype=OFFSET_DTYPE))
    for part in parts:
        offsets = part["offsets"]
        step = _CHUNK // OFFSET_DTYPE.itemsize
        for i in range(1, len(offsets), step):
            writer.write(np.asarray(offsets[i: i + step], OFFSET_DTYPE) + np.uint64(base))
        base += int(offsets[-1])
    facts["offsets"] = writer.finish()
    merged = [np.array(part["keys"]) for part in parts]
    for keys, source in zip(merged, sources):
        keys["local"] += np.uint64(source.start - sources[0].start)
    writer = FileWriter(paths["keys"])
    writer.write(np.sort(np.concatenate(merged), order=("hash", "local")) if merged else
                 np.zeros(0, KEY_DTYPE))
    facts["keys"] = writer.finish()
    return facts


def _part(source: Segment, purge: np.ndarray | None) -> dict[str, Any]:
    """A source's codes and metadata (block readers), offsets and keys, `purge` items emptied."""
    local = np.zeros(0, np.int64) if purge is None else (
        purge[(purge >= source.start) & (purge < source.start + source.count)] - source.start)
    if not len(local):
        return {"codes": lambda: _read_blocks(source.paths["codes"]),
                "meta": lambda: _read_blocks(source.paths["meta"]),
                "vectors": lambda: _read_blocks(source.paths["vectors"]),
                "offsets": source.offsets, "keys": source.keys}
    codes = np.array(source.codes)
    codes[local] = 0
    vectors = np.array(source.vectors) if source.vectors is not None else None
    if vectors is not None:
        vectors[local] = 0
    gone = np.isin(np.arange(source.count), local)
    lines = [b'{"deleted":true}\n' if gone[i] else
             source.meta[int(source.offsets[i]):int(source.offsets[i + 1])].tobytes()
             for i in range(source.count)]
    meta, offsets = join_lines(lines)
    keys = source.keys[~gone[source.keys["local"].astype(np.int64)]] if len(source.keys) else source.keys
    return {"codes": lambda: [codes], "meta": lambda: [meta], "vectors": lambda: [vectors],
            "offsets": offsets, "keys": keys}


def _read_blocks(path: Path) -> Iterator[bytes]:
    with open(path, "rb") as handle:
        while block := handle.read(_CHUNK):
            yield block


def _read_u64(path: Path, index: int) -> int:
    """One offset, read without touching the memory map (a touched page can map a whole
    multi-megabyte page-cache folio into this process)."""
    with open(path, "rb") as handle:
        return int(np.frombuffer(os.pread(handle.fileno(), 8, 8 * index), OFFSET_DTYPE)[0])


def _map(path: Path, size: int) -> np.ndarray:
    """Read-only memory map of a whole file as uint8 (pages load only when touched)."""
    if size == 0:
        return np.zeros(0, np.uint8)  # mmap cannot map an empty file
    with open(path, "rb") as handle:
        mapped = mmap.mmap(handle.fileno(), size, access=mmap.ACCESS_READ)
    return np.frombuffer(mapped, dtype=np.uint8)


@dataclass
class Segment:
    """One committed segment, memory-mapped; ids `start .. start+count-1`."""

    name: str
    start: int
    count: int
    files: dict[str, dict[str, Any]]
    paths: dict[str, Path]
    codes: np.ndarray  # (count, bytes per code) uint8
    meta: np.ndarray  # uint8 JSON lines
    offsets: np.ndarray  # (count + 1,) little-endian uint64
    keys: np.ndarray  # KEY_DTYPE, sorted by hash; empty for a segment of format version 1
    vectors: np.ndarray | None  # (count, bits) int8 re-rank vectors, or None (not stored)

    @classmethod
    def open(cls, folder: Path, entry: dict[str, Any], code_bytes: int) -> Segment:
        """Map a segment's files after checking their sizes against the manifest `entry`.

        Raises FileNotFoundError for a missing file (the caller may retry with a newer
        manifest) and DataError for any other mismatch.
        """
        name, count = entry["name"], entry["count"]
        paths = segment_files(folder, name, entry["files"])
        expected = {"codes": count * code_bytes, "offsets": (count + 1) * OFFSET_DTYPE.itemsize,
                    "meta": entry["files"]["meta"]["bytes"],
                    "keys": entry["files"].get("keys", {}).get("bytes", 0),
                    "vectors": count * code_bytes * 8}
        for kind, path in paths.items():
            size = path.stat().st_size
            if size != expected[kind] or entry["files"][kind]["bytes"] != expected[kind]:
                raise DataError(f"hash database file {path} has {size} bytes, the manifest expects "
                                f"{expected[kind]} (truncated or changed)", hint=_CORRUPT_HINT)
        codes = _map(paths["codes"], expected["codes"]).reshape(count, code_bytes)
        offsets = _map(paths["offsets"], expected["offsets"]).view(OFFSET_DTYPE)
        meta = _map(paths["meta"], expected["meta"])
        keys = _map(paths["keys"], expected["keys"]).view(KEY_DTYPE) if "keys" in paths else (
            np.zeros(0, KEY_DTYPE))
        vectors = (_map(paths["vectors"], expected["vectors"]).view(np.int8).reshape(count, code_bytes * 8)
                   if "vectors" in paths else None)
        if _read_u64(paths["offsets"], 0) != 0 or _read_u64(paths["offsets"], count) != len(meta):
            raise DataError(f"hash database file {paths['offsets']} does not match "
                            f"{paths['meta'].name}", hint=_CORRUPT_HINT)
        return cls(name, entry["start"], count, entry["files"], paths, codes, meta, offsets, keys, vectors)

    def verify(self) -> None:
        """Check each file's crc32 and that the offsets increase; DataError names the bad file.

        Files are read in chunks rather than through the maps, so verifying keeps no memory."""
        buffer = bytearray(_CHUNK)
        for kind, path in self.paths.items():
            crc, last, increasing = 0, -1, True
            with open(path, "rb", buffering=0) as handle:
                while size := handle.readinto(buffer):
                    block = memoryview(buffer)[:size]
                    crc = zlib.crc32(block, crc)
                    if kind == "offsets":  # chunks are a multiple of 8 bytes
                        values = np.frombuffer(block, OFFSET_DTYPE)
                        increasing &= bool(int(values[0]) > last and np.all(values[1:] > values[:-1]))
                        last = int(values[-1])
            if f"{crc:08x}" != self.files[kind]["crc32"]:
                raise DataError(f"hash database file {path} fails its checksum (crc32): it is "
                                "corrupt or was changed", hint=_CORRUPT_HINT)
            if not increasing:
                raise DataError(f"hash database file {path} holds offsets that do not increase",
                                hint=_CORRUPT_HINT)
        if len(self.keys) and (np.any(self.keys["hash"][1:] < self.keys["hash"][:-1])
                               or int(self.keys["local"].max()) >= self.count):
            raise DataError(f"hash database file {self.paths['keys']} is not a sorted key index of "
                            "this segment", hint=_CORRUPT_HINT)

    def record(self, local: int) -> dict[str, Any]:
        """Metadata of item `local` of this segment (parsed from its one JSON line)."""
        begin, end = int(self.offsets[local]), int(self.offsets[local + 1])
        try:
            if not begin < end <= len(self.meta):
                raise ValueError("offsets out of range")
            value = json.loads(self.meta[begin:end].tobytes())
            if not isinstance(value, dict):
                raise ValueError("not a JSON object")
        except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
            raise DataError(f"metadata of item {self.start + local} in {self.paths['meta']} is "
                            f"unreadable ({exc})", hint=_CORRUPT_HINT) from None
        return value

    def find(self, key: str) -> int | None:
        """The local index of the item stored under `key`, or None (index lookup, no scan)."""
        wanted = np.uint64(key_hash(key))
        at = int(np.searchsorted(self.keys["hash"], wanted))
        while at < len(self.keys) and self.keys["hash"][at] == wanted:
            local = int(self.keys["local"][at])
            if self.record(local).get("key") == key:
                return local
            at += 1
        return None


# ---- the manifest and the metadata lines ---------------------------------------------------
def sealed(manifest: dict[str, Any]) -> dict[str, Any]:
    body = {k: v for k, v in manifest.items() if k != "manifest_sha256"}
    return {**body, "manifest_sha256": json_digest(body)}


def read_manifest(path: Path) -> dict[str, Any]:
    """Read and check a database manifest; any problem is a DataError naming the file."""
    file = path / MANIFEST
    if not path.is_dir():
        raise DataError(f"hash database not found: {path}", hint="create one with `dnh hash`")
    try:
        text = file.read_bytes().decode("utf-8")
        data = json.loads(text)
    except FileNotFoundError:
        raise DataError(f"not a dnh hash database: {path} (no {MANIFEST})",
                        hint="create one with `dnh hash`") from None
    except (OSError, ValueError) as exc:
        raise DataError(f"hash database manifest {file} is unreadable or corrupt ({exc})",
                        hint=_CORRUPT_HINT) from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise DataError(f"not a dnh hash database: {file} is not a {FORMAT} manifest")
    version = data.get("format_version")
    newer = isinstance(version, int) and version > max(READABLE_VERSIONS)
    if not newer and (text != canonical_json(data) or data != sealed(data)):
        raise DataError(f"hash database manifest {file} fails its checksum (corrupt or edited)",
                        hint=_CORRUPT_HINT)
    if version not in READABLE_VERSIONS:
        raise DataError(f"hash database manifest {file} has format version {version}, "
                        f"this dnh reads versions {', '.join(map(str, READABLE_VERSIONS))}",
                        hint="use the dnh version that wrote it, or rebuild the database")
    try:
        _check_schema(data)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise DataError(f"hash database manifest {file} is inconsistent ({exc})",
                        hint=_CORRUPT_HINT) from None
    return data


def _check_schema(data: dict[str, Any]) -> None:
    """Raise ValueError/KeyError/TypeError if the manifest's fields disagree with each other."""
    bits = data["bits"]
    if not isinstance(bits, int) or bits % 8 or not 8 <= bits <= 128 or data["code_bytes"] != bits // 8:
        raise ValueError(f"bad bit length {bits!r}")
    start = 0
    for entry in data["segments"]:
        number = int(entry["name"][4:]) if SEGMENT_NAME.match(entry["name"]) else -1
        if not 0 <= number < data["next_segment"]:
            raise ValueError(f"bad segment name {entry['name']!r}")
        if (entry["start"] != start or not isinstance(entry["count"], int) or entry["count"] < 1
                or entry["files"]["meta"]["bytes"] < 3 * entry["count"]):  # "{}\n" at least
            raise ValueError(f"segment {entry['name']} does not follow its predecessor")
        vectors = bool(data.get("rerank")) == ("vectors" in entry["files"])
        if set(entry["files"]) not in KIND_SETS or not vectors or not all(
                isinstance(f["bytes"], int) and isinstance(f["crc32"], str) for f in entry["files"].values()):
            raise ValueError(f"segment {entry['name']} lists bad files")
        keys = entry["files"].get("keys", {"bytes": 0})["bytes"]
        if keys % KEY_DTYPE.itemsize or keys > KEY_DTYPE.itemsize * entry["count"]:
            raise ValueError(f"segment {entry['name']} has a key index of {keys} bytes")
        start += entry["count"]
    if data["count"] != start:
        raise ValueError(f"count {data['count']} != {start}, the sum of the segment sizes")


def load(path: Path) -> tuple[dict[str, Any], list[Segment]]:
    """Read the manifest and map its segments; retries if a writer replaced files meanwhile."""
    for _ in range(5):
        manifest = read_manifest(path)
        try:
            return manifest, [Segment.open(path, entry, manifest["code_bytes"])
                              for entry in manifest["segments"]]
        except FileNotFoundError as exc:
            if read_manifest(path)["manifest_sha256"] == manifest["manifest_sha256"]:
                raise DataError(f"hash database file {exc.filename} is missing", hint=_CORRUPT_HINT) from None
        except OSError as exc:
            raise DataError(f"cannot read hash database file {exc.filename}: {exc.strerror}") from None
    raise DataError(f"hash database {path} keeps changing while it is opened",
                    hint="retry when the writer has finished")


def leftover_of_create(filename: str) -> bool:
    """Files an interrupted `create` may leave in an otherwise empty folder."""  # LOCK: the flock
    return filename == LOCK or filename.startswith(f".{MANIFEST}.tmp-")
