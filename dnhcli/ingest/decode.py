"""Decoding one planned unit into the model's input, with each image's metadata: the same
code path for `--engine local` and every Ray worker, so both store the same items."""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dnhcli.data import keys, preprocess
from dnhcli.data.dataset import PreparedDataset
from dnhcli.data.dicom import read_dicom
from dnhcli.data.images import label_metadata, load_npy, load_picture, normalize
from dnhcli.errors import InputError
from dnhcli.ingest.plan import Unit

MMAP_THRESHOLD, TRIM_THRESHOLD = 128 << 20, 256 << 20


def keep_freed_memory() -> bool:
    """Let glibc keep the memory of freed arrays in this process instead of returning it to the
    system after every image: decoding one 512 x 512 DICOM makes several 1-2 MB temporaries,
    each otherwise a fresh mmap (about 1,550 page faults and 3 ms of system time per image;
    about 50 faults with this; docs/BENCHMARKS.md, ingest). Process-wide, so it is called by
    `dnh hash` and by each Ray worker, not by the library; False where there is no glibc."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3  # glibc's malloc.h
    return bool(mallopt(m_mmap_threshold, MMAP_THRESHOLD)) and bool(mallopt(m_trim_threshold, TRIM_THRESHOLD))


@dataclass
class Decoded:
    """A unit's images (n, side, side) uint8 and metadata; `replanned` where the pixels had
    another frame count than the header or listing, so the keys were made anew from the
    pixels and the writer must check them against the database itself."""

    images: np.ndarray
    metadata: list[dict[str, Any]]
    replanned: bool = False


@dataclass
class Failure:
    """An input that could not be read: its keys, where it came from, and why."""

    keys: list[str]
    source: str
    error: str
    hint: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"keys": self.keys, "source": self.source, "error": self.error, "hint": self.hint}


@dataclass
class Decoder:
    """Reads units for a model taking (side x side) inputs; PACS clients and datasets are
    opened once per decoder (once per Ray worker)."""

    side: int
    source: str | None = None  # the PACS URL (credentials included) of pacs units
    _client: Any = None
    _datasets: dict[str, PreparedDataset] = field(default_factory=dict)

    def decode(self, unit: Unit) -> Decoded:
        """The unit's kept images; an `InputError` naming it where it cannot be read."""
        if unit.kind == "split":
            return self._split(unit)
        if unit.kind == "npy":
            raw = load_npy(Path(unit.path), unit.shown)
            stacked = bool(unit.extra.get("stacked"))
            count = len(unit.keys)
            images = normalize(raw[unit.start:unit.start + count] if stacked else raw, unit.shown, self.side)
            return Decoded(images[unit.keep], [
                {"source": f"{unit.shown}[{unit.start + i}]" if stacked else unit.shown, "file": unit.path,
                 "index": unit.start + i if stacked else None, "key": unit.keys[i]} for i in unit.keep])
        if unit.kind == "picture":
            images = normalize(load_picture(Path(unit.path), unit.shown), unit.shown, self.side)
            return Decoded(images, [{"source": unit.shown, "file": unit.path, "index": None,
                                     "key": unit.keys[0]}])
        if unit.kind in ("dicom", "pacs"):
            return self._dicom(unit)
        raise InputError(f"unknown work unit kind {unit.kind!r}")

    def _dicom(self, unit: Unit) -> Decoded:
        if unit.kind == "pacs":
            from dnhcli.ingest.sources import Instance

            client = self._pacs()
            data = client.fetch(Instance(unit.path, unit.base.removeprefix("dicom:"), len(unit.keys)))
            frames, tags = read_dicom(io.BytesIO(data), unit.shown)
            where = {"pacs": client.shown, "instance": unit.path}
        else:
            frames, tags = read_dicom(Path(unit.path), unit.shown)
            where = {"file": unit.path, "index": None}
        names, keep, replanned = unit.keys, unit.keep, False
        if len(frames) != len(names):  # the header (or listing) and the pixels disagree: the pixels win
            names = keys.item_keys(unit.base, len(frames), len(frames) > 1)
            keep, replanned = list(range(len(frames))), True
        images = np.stack([preprocess.fit(frames[i], self.side, unit.shown) for i in keep])
        return Decoded(images, [{"source": unit.shown if len(frames) == 1 else f"{unit.shown}[{i}]", **where,
                                 **tags[i], "key": names[i]} for i in keep], replanned)

    def _split(self, unit: Unit) -> Decoded:
        dataset = self._datasets.get(unit.path)
        if dataset is None:
            dataset = self._datasets[unit.path] = PreparedDataset.open(Path(unit.path))
        data, split, start = dataset.split(unit.shown), unit.shown, unit.start
        stop = start + len(unit.keys)
        labels = np.asarray(data.labels[start:stop])
        raw = np.asarray(data.raw_labels[start:stop])
        meta = [{"source": f"{split}[{start + i}]", "dataset": unit.path, "split": split, "index": start + i,
                 **label_metadata(dataset, labels[i].tolist(), raw[i]), "key": unit.keys[i]}
                for i in unit.keep]
        images = np.asarray(data.images[start:stop])[unit.keep]
        return Decoded(images, meta)

    def _pacs(self) -> Any:
        if self._client is None:
            from dnhcli.ingest.pacs import open_source

            if self.source is None:
                raise InputError("a PACS unit without a PACS source")
            self._client = open_source(self.source)
        return self._client

    def attempt(self, unit: Unit) -> Decoded | Failure:
        """`decode`, with an unreadable input returned as a `Failure` instead of raised (an
        unreachable server or a broken dataset still raises: they are not one image's fault)."""
        try:
            return self.decode(unit)
        except InputError as exc:
            return Failure(unit.kept_keys, unit.shown, exc.message, exc.hint)
