"""The search service behind `dnh serve`: one encoder and one database snapshot held in memory,
queries encoded and ranked by one worker thread that batches whatever arrives together.

Snapshots: a search uses the snapshot that was current when its batch began. Another process
appending to the database replaces its manifest atomically; a watcher thread looks at the
manifest every `reload_interval` seconds and opens a new snapshot beside the old one, which
requests in flight keep using (its memory maps stay valid even if compaction removed its
files). So no request is dropped and none sees a torn append.
"""

from __future__ import annotations

import io
import os
import queue
import threading
import time
from collections import OrderedDict
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dnhcli.deploy.backends import Backend, load_backend
from dnhcli.errors import DnhError, InputError
from dnhcli.index.codes import codes_from_continuous
from dnhcli.index.rerank import DEFAULT_OVERSAMPLE, check_oversample
from dnhcli.retrieval.montage import StoredImages
from dnhcli.retrieval.query import TIE_BREAKS, ranked, ranked_asymmetric, result_rows, stored_model
from dnhcli.stores import open_store
from dnhcli.stores.locate import is_url, shown
from dnhcli.stores.segments import MANIFEST

MAX_BATCH_IMAGES = 256  # query images encoded and ranked in one round of the worker


class NotFound(InputError):
    """The item asked for does not exist or its source image cannot be read (HTTP 404)."""


class TooLarge(InputError):
    """The request body is over the limit (HTTP 413)."""


class TooSlow(InputError):
    """The request body did not arrive in time (HTTP 408)."""


@dataclass(frozen=True)
class ServeConfig:
    db: Path | str  # a folder, or a postgresql:// URL
    model: Path | None = None  # None: the encoder stored in the database
    threads: int | None = None  # search and inference threads (None: all cores)
    max_upload: int = 8 << 20  # bytes in one request body
    max_k: int = 1000
    max_images: int = 64  # query images in one /search/batch request
    reload_interval: float = 1.0  # seconds between looks at the manifest (0: only POST /reload)
    upload_timeout: float = 30.0  # seconds a client may pause while sending its body
    batching: bool = True  # rank queries that arrive together in one pass

    def to_env(self) -> dict[str, Any]:
        return {**self.__dict__, "db": str(self.db), "model": str(self.model) if self.model else None}

    @classmethod
    def from_env(cls, values: dict[str, Any]) -> ServeConfig:
        return cls(**{**values, "db": values["db"] if is_url(values["db"]) else Path(values["db"]),
                      "model": Path(values["model"]) if values.get("model") else None})


@dataclass
class _Snapshot:
    db: Any  # a HashDB, or a PostgresStore
    stamp: tuple[Any, ...]
    opened: float
    asymmetric: tuple[np.ndarray, np.ndarray] | None = None  # (live codes, live ids), on first use


@dataclass
class _Job:
    images: np.ndarray
    names: list[str]
    k: int
    radius: int | None
    tie_break: str
    rerank: bool = True
    oversample: int = DEFAULT_OVERSAMPLE
    future: Future = field(default_factory=Future)


def _stamp(db: Path | str) -> tuple[Any, ...]:
    """What changes when a writer commits: the manifest's identity, or PostgreSQL's version."""
    if is_url(db):
        from dnhcli.stores.postgres import PostgresStore

        try:
            return PostgresStore.stamp_of(str(db))
        except DnhError:
            return (0, 0)
    try:
        st = os.stat(Path(db) / MANIFEST)
    except OSError:
        return (0, 0, 0)
    return (st.st_ino, st.st_mtime_ns, st.st_size)


class SearchService:
    """Encodes uploads and searches the database; thread-safe, one instance per process."""

    def __init__(self, config: ServeConfig, backend: Backend | None = None) -> None:
        from dnhcli.index import search as kernels

        self.config = config
        if config.threads is not None:
            kernels.set_threads(config.threads)
        kernels.warm_up()  # a long-running process: the compiled kernels from the first query on
        self.backend = backend or load_backend(config.model or stored_model(config.db), config.threads)
        self.reload_error: str | None = None
        self._snapshot = self._open()
        self._reload_lock = threading.Lock()
        self._images_lock = threading.Lock()
        self._images = StoredImages(self.backend.input_side)
        self._thumbnails: OrderedDict[tuple[int, int, int], bytes] = OrderedDict()
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._stop = threading.Event()
        self._worker = threading.Thread(target=self._work, name="dnh-search", daemon=True)
        self._worker.start()
        self._watcher: threading.Thread | None = None
        if config.reload_interval > 0:
            self._watcher = threading.Thread(target=self._watch, name="dnh-reload", daemon=True)
            self._watcher.start()

    # ---- the database snapshot -----------------------------------------------------------
    def _open(self) -> _Snapshot:
        stamp = _stamp(self.config.db)
        current = getattr(self, "_snapshot", None)
        if current is not None and is_url(self.config.db):
            # PostgreSQL answers from its own committed state: the open store needs only
            # its facts read again (one connection for the server's life)
            current.db.refresh()
            current.db.check_model(self.backend.bits, self.backend.fingerprint)
            return _Snapshot(current.db, stamp, time.time())
        db = open_store(self.config.db, verify=True)
        try:
            db.check_model(self.backend.bits, self.backend.fingerprint)
        except DnhError:
            db.close()
            raise
        db.consolidate()
        return _Snapshot(db, stamp, time.time())

    def reload(self, force: bool = False) -> bool:
        """Open a new snapshot if the manifest changed (or `force`); True if one was opened.
        A failure keeps the old snapshot, is kept in `reload_error` and is raised."""
        with self._reload_lock:
            if not force and _stamp(self.config.db) == self._snapshot.stamp:
                return False
            try:
                self._snapshot = self._open()
            except DnhError as exc:
                self.reload_error = str(exc)
                raise
            self.reload_error = None
            return True

    def _watch(self) -> None:
        while not self._stop.wait(self.config.reload_interval):
            try:
                self.reload()
            except DnhError:
                pass  # kept in reload_error, shown by /health; the old snapshot goes on serving

    def health(self) -> dict[str, Any]:
        snap = self._snapshot
        return {"ok": self.reload_error is None, "count": snap.db.live, "bits": snap.db.bits,
                "model_fingerprint": self.backend.fingerprint, "engine": self.backend.name,
                "input_side": self.backend.input_side, "db": shown(self.config.db),
                "updated": snap.db.manifest.get("updated"), "rerank": snap.db.has_vectors,
                "opened": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(snap.opened)),
                "reload_error": self.reload_error}

    # ---- searching -----------------------------------------------------------------------
    def check_query(self, k: int, radius: int | None, tie_break: str,
                    oversample: int = DEFAULT_OVERSAMPLE) -> None:
        if k < 1 or k > self.config.max_k:
            raise InputError(f"k must be between 1 and {self.config.max_k}, got {k}",
                             hint="ask for fewer results, or start the server with a larger --max-k")
        if radius is not None and radius < 0:
            raise InputError(f"radius must be zero or positive, got {radius}")
        if tie_break not in TIE_BREAKS:
            raise InputError(f"tie_break must be one of {', '.join(TIE_BREAKS)}, got {tie_break!r}")
        check_oversample(oversample)

    def submit(self, images: np.ndarray, names: list[str], k: int = 10, radius: int | None = None,
               tie_break: str = "insertion-order", rerank: bool = True,
               oversample: int = DEFAULT_OVERSAMPLE) -> Future:
        """Queue model-ready images (N, side, side) for search; the future gives one
        `{"query", "results"}` dict per image, as `dnh search --json` gives them: two-stage
        where the database stores re-rank vectors and `rerank` (no radius), else by Hamming."""
        self.check_query(k, radius, tie_break, oversample)
        if radius is not None:
            radius = min(radius, self._snapshot.db.bits)  # a larger radius holds every item too
        job = _Job(images, names, k, radius, tie_break, rerank and radius is None, oversample)
        if self._stop.is_set():
            raise InputError("the service is shutting down")
        self._jobs.put(job)
        return job.future

    def search(self, images: np.ndarray, names: list[str], k: int = 10, radius: int | None = None,
               tie_break: str = "insertion-order", rerank: bool = True,
               oversample: int = DEFAULT_OVERSAMPLE) -> list[dict[str, Any]]:
        return self.submit(images, names, k, radius, tie_break, rerank, oversample).result()

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            jobs, count = [job], len(job.images)
            while self.config.batching and count < MAX_BATCH_IMAGES:
                try:
                    more = self._jobs.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    self._jobs.put(None)
                    break
                jobs.append(more)
                count += len(more.images)
            groups: dict[tuple[Any, ...], list[_Job]] = {}
            for item in jobs:  # a two-stage top k is no prefix of a larger k's: grouped by k too
                two_stage = (item.k, item.oversample) if item.rerank else None
                groups.setdefault((item.radius, item.tie_break, two_stage), []).append(item)
            for group in groups.values():
                self._run(group)

    def _run(self, jobs: list[_Job]) -> None:
        """Encode and rank one group (same radius and tie break; two-stage: same k) with the
        largest k asked; each job keeps its own first k (a larger k's Hamming ranking starts
        with the smaller's)."""
        try:
            snap = self._snapshot
            images = np.concatenate([job.images for job in jobs])
            h = self.backend.encode(images)
            codes = codes_from_continuous(h)
            k, radius = max(job.k for job in jobs), jobs[0].radius
            scores: list[Any] = [None] * len(images)
            if jobs[0].rerank and snap.db.has_vectors:
                hamming, score, ids = snap.db.search_two_stage(codes, h, k, jobs[0].oversample)
                per_query, scores = list(zip(hamming, ids)), list(score)
            elif jobs[0].tie_break == "asymmetric" and snap.db.live:
                stored, live = self._asymmetric(snap)
                per_query = [(d, live[i]) for d, i in ranked_asymmetric(stored, codes, h, k, radius)]
            else:
                per_query = list(ranked(snap.db, codes, k, radius))
        except BaseException as exc:  # noqa: BLE001 - handed to the waiting requests
            for job in jobs:
                job.future.set_exception(exc)
            return
        at = 0
        for job in jobs:
            try:
                out = []
                for name, (distances, ids), score in zip(job.names, per_query[at:at + len(job.images)],
                                                         scores[at:at + len(job.images)]):
                    out.append({"query": name, "results": result_rows(
                        snap.db, distances[:job.k], ids[:job.k], None if score is None else score[:job.k])})
                job.future.set_result(out)
            except BaseException as exc:  # noqa: BLE001
                job.future.set_exception(exc)
            at += len(job.images)

    def _asymmetric(self, snap: _Snapshot) -> tuple[np.ndarray, np.ndarray]:
        if snap.asymmetric is None:
            live = snap.db.live_ids()
            snap.asymmetric = (snap.db.codes()[live], live)
        return snap.asymmetric

    # ---- items ---------------------------------------------------------------------------
    def item(self, item: int) -> dict[str, Any]:
        """An item's stored metadata (with its "id"); NotFound for an unknown or deleted id."""
        db = self._snapshot.db
        try:
            if not 0 <= item < len(db):
                raise InputError("out of range")
            return db.metadata([item])[0]  # reads that record only; refuses a deleted item
        except InputError:
            raise NotFound(f"no item {item} in the hash database",
                           hint=f"ids run from 0 to {len(db) - 1}; deleted items are gone" if len(db)
                           else "the database is empty") from None

    def thumbnail(self, item: int, size: int) -> bytes:
        """The stored image of `item` as the model saw it, as a `size` x `size` PNG."""
        from PIL import Image

        if not 8 <= size <= 1024:
            raise InputError(f"size must be between 8 and 1024 pixels, got {size}")
        meta = self.item(item)
        key = (id(self._snapshot), item, size)
        with self._images_lock:
            if key in self._thumbnails:
                self._thumbnails.move_to_end(key)
                return self._thumbnails[key]
            image = self._images.image(meta)
        if image is None:
            raise NotFound(f"the source image of item {item} cannot be read ({meta.get('source')})",
                           hint="it was moved or removed after it was hashed")
        picture = Image.fromarray(np.asarray(image, np.uint8))
        if picture.size != (size, size):
            upscale = size >= picture.width
            picture = picture.resize((size, size), Image.Resampling.NEAREST if upscale
                                     else Image.Resampling.LANCZOS)
        out = io.BytesIO()
        picture.save(out, "PNG")
        with self._images_lock:
            self._thumbnails[key] = out.getvalue()
            while len(self._thumbnails) > 2048:
                self._thumbnails.popitem(last=False)
        return out.getvalue()

    def close(self) -> None:
        if self._stop.is_set():
            return
        self._stop.set()
        self._jobs.put(None)
        self._worker.join(timeout=10)
        if self._watcher is not None:
            self._watcher.join(timeout=10)
        if is_url(self.config.db):
            self._snapshot.db.close()
