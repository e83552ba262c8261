"""`search`: query images -> the nearest stored items, with metadata: two-stage by default (Hamming
candidates re-scored with the stored re-rank vectors, `dnhcli.index.rerank`), by Hamming distance
alone with `rerank=False`, for a radius, or for a database written before re-rank vectors."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dnhcli.data.images import CHUNK, iter_files
from dnhcli.deploy.backends import Backend, load_backend
from dnhcli.errors import InputError
from dnhcli.index.codes import codes_from_continuous
from dnhcli.index.rerank import DEFAULT_OVERSAMPLE, check_oversample
from dnhcli.stores import open_store
from dnhcli.stores.hashdb import HashDB
from dnhcli.stores.locate import shown
from dnhcli.stores.two_stage import no_vectors_notice

RESULT_KEYS = ("rank", "distance", "score", "id", "source", "organ", "disease")


@dataclass(frozen=True)
class SearchConfig:
    model: Path | None  # None: the encoder stored in the database
    db: Path | str  # a folder, or a postgresql:// URL
    queries: tuple[Path, ...]
    k: int = 10
    radius: int | None = None
    tie_break: str = "insertion-order"
    chunk: int = CHUNK  # query images encoded and ranked at a time: bounds memory
    rerank: bool = True  # two-stage where the database stores re-rank vectors
    oversample: int = DEFAULT_OVERSAMPLE


TIE_BREAKS = ("insertion-order", "asymmetric")


@dataclass
class QueryResult:
    query: str
    image: np.ndarray
    results: list[dict[str, Any]]


@dataclass
class SearchResult:
    db: Path | str
    bits: int
    k: int
    radius: int | None
    seconds: float
    queries: list[QueryResult] = field(default_factory=list)
    tie_break: str = "insertion-order"
    rerank: bool = False  # whether the results were re-scored (two-stage)
    oversample: int = DEFAULT_OVERSAMPLE
    notices: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"db": shown(self.db), "bits": self.bits, "k": self.k, "radius": self.radius,
                "tie_break": self.tie_break, "rerank": self.rerank, "oversample": self.oversample,
                "notices": self.notices, "seconds": round(self.seconds, 6),
                "queries": [{"query": q.query, "results": q.results} for q in self.queries]}


def result_rows(db: HashDB, distances: np.ndarray, ids: np.ndarray, scores: np.ndarray | None = None
                ) -> list[dict[str, Any]]:
    """Result rows: rank, Hamming distance, the re-rank score (None for a Hamming-only search),
    id and the item's metadata."""
    rows = []
    found = ids >= 0  # a two-stage row may be padded where a query had fewer candidates
    distances, ids = distances[found], ids[found]
    score = scores[found].tolist() if scores is not None else [None] * len(ids)
    for rank, (distance, s, item, meta) in enumerate(zip(distances.tolist(), score, ids.tolist(),
                                                         db.metadata(ids)), start=1):
        extra = {k: v for k, v in meta.items() if k not in RESULT_KEYS}
        rows.append({"rank": rank, "distance": int(distance),
                     "score": None if s is None else round(float(s), 6), "id": int(item),
                     "source": meta.get("source"), "organ": meta.get("organ"),
                     "disease": meta.get("disease"), **extra})
    return rows


def search(config: SearchConfig, backend: Backend | None = None) -> SearchResult:
    """Hash the query images with the database's model and rank the stored items:
    top k by Hamming distance (ties by insertion order, or with `tie_break="asymmetric"` by
    the query's continuous code against the stored bits), or, with a radius, every item
    within it (at most k). Holds every result; `iter_search` streams them."""
    began = time.perf_counter()
    result = SearchResult(db=config.db, bits=0, k=config.k, radius=config.radius, seconds=0.0,
                          tie_break=config.tie_break, oversample=config.oversample)
    for query in iter_search(config, backend, result):
        result.queries.append(query)
    result.seconds = time.perf_counter() - began
    return result


def iter_search(config: SearchConfig, backend: Backend | None = None,
                header: SearchResult | None = None) -> Iterator[QueryResult]:
    """The results of `search`, query by query, with `config.chunk` query images in memory at
    a time. Every input is checked before the first result, so a bad file fails the whole
    search up front; `header.bits`, `.rerank` and `.notices` are set once the database is open."""
    if config.tie_break not in TIE_BREAKS:
        raise InputError(f"--tie-break must be one of {', '.join(TIE_BREAKS)}, got {config.tie_break!r}")
    if config.k < 1:
        raise InputError(f"-k must be at least 1, got {config.k}")
    if config.radius is not None and config.radius < 0:
        raise InputError(f"--radius must be zero or positive, got {config.radius}")
    if config.chunk < 1:
        raise InputError(f"--chunk must be at least 1, got {config.chunk}")
    check_oversample(config.oversample)
    backend = backend or load_backend(config.model or stored_model(config.db))
    for _ in iter_files(config.queries, config.chunk, backend.input_side):
        pass  # a first, streamed pass checks every file before any result is given
    with open_store(config.db) as db:
        db.check_model(backend.bits, backend.fingerprint)
        two_stage = config.rerank and config.radius is None and db.has_vectors
        if header is not None:
            header.bits, header.rerank = db.bits, two_stage
            if config.rerank and not db.has_vectors:
                header.notices.append(no_vectors_notice(shown(config.db)))
        live = (db.live_ids() if config.tie_break == "asymmetric" and db.live and not two_stage
                else None)
        stored = db.codes()[live] if live is not None else None  # deleted items left out
        for chunk in iter_files(config.queries, config.chunk, backend.input_side):
            h = backend.encode(chunk.images)
            codes = codes_from_continuous(h)
            per_query: Sequence[tuple[np.ndarray, np.ndarray]]
            if two_stage:
                hamming, score, ids = db.search_two_stage(codes, h, config.k, config.oversample)
                for image, meta, d, s, i in zip(chunk.images, chunk.metadata, hamming, score, ids):
                    yield QueryResult(query=meta["source"], image=image, results=result_rows(db, d, i, s))
                continue
            if stored is not None and live is not None:
                per_query = [(d, live[i]) for d, i in ranked_asymmetric(stored, codes, h, config.k,
                                                                        config.radius)]
            else:
                per_query = ranked(db, codes, config.k, config.radius)
            for image, meta, (distances, ids) in zip(chunk.images, chunk.metadata, per_query):
                yield QueryResult(query=meta["source"], image=image, results=result_rows(db, distances, ids))


def stored_model(db: Path | str) -> Path:
    """The encoder a database stores (so a search needs no --model)."""
    with open_store(db, verify=False) as database:
        path = database.model_path
    if path is None:
        raise InputError(f"the hash database {shown(db)} stores no model (it was built before dnh stored "
                         "them, or from an OpenVINO IR without its encoder.onnx)",
                         hint="pass --model with the model that built it")
    return path


def ranked(db: HashDB, codes: np.ndarray, k: int, radius: int | None
           ) -> Sequence[tuple[np.ndarray, np.ndarray]]:
    if radius is None:
        distances, ids = db.search(codes, k)
        return list(zip(distances, ids))
    lims, distances, ids = db.range_search(codes, radius)
    return [(distances[lims[q]:lims[q + 1]][:k], ids[lims[q]:lims[q + 1]][:k])
            for q in range(len(codes))]


def ranked_asymmetric(stored: np.ndarray, codes: np.ndarray, h: np.ndarray, k: int, radius: int | None
                      ) -> Sequence[tuple[np.ndarray, np.ndarray]]:
    """Top k by (Hamming distance, asymmetric distance, id); with a radius, cut at it."""
    from dnhcli.index.codes import hamming_distances
    from dnhcli.index.ranking import asymmetric_rank

    ids, _ = asymmetric_rank(codes, h, stored, k, np.zeros(len(stored), np.int64), 1)
    out = []
    for q in range(len(codes)):
        distances = hamming_distances(codes[q:q + 1], stored[ids[q]])[0].astype(np.int32)
        keep = distances <= radius if radius is not None else slice(None)
        out.append((distances[keep], ids[q][keep]))
    return out
