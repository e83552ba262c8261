"""The local engine: units decoded and encoded in this process, whole units per batch."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dnhcli.index.codes import codes_from_continuous
from dnhcli.index.rerank import quantize_vectors
from dnhcli.ingest.decode import Decoded, Decoder, Failure
from dnhcli.ingest.plan import Unit


@dataclass
class Encoded:
    """Whole units hashed: packed codes (n, bits/8), re-rank vectors (n, bits) int8, their
    metadata, which rows had their keys made anew from the pixels (`Decoded.replanned`), and
    the units that failed."""

    codes: np.ndarray
    vectors: np.ndarray
    metadata: list[dict[str, Any]]
    replanned: np.ndarray
    failures: list[Failure] = field(default_factory=list)


def encode_decoded(decoded: list[Decoded], failures: list[Failure], backend: Any, bits: int) -> Encoded:
    """One batch of decoded units through the encoder."""
    if not decoded:
        return Encoded(np.zeros((0, bits // 8), np.uint8), np.zeros((0, bits), np.int8), [],
                       np.zeros(0, bool), failures)
    images = np.concatenate([d.images for d in decoded])
    h = backend.encode(images)
    replanned = np.concatenate([np.full(len(d.images), d.replanned) for d in decoded])
    return Encoded(codes_from_continuous(h), quantize_vectors(h), [m for d in decoded for m in d.metadata],
                   replanned, failures)


def run_local(units: Iterable[Unit], decoder: Decoder, backend: Any, chunk: int) -> Iterator[Encoded]:
    """Batches of about `chunk` images; an unreadable unit comes back as a `Failure` (the
    caller stops the run or skips it)."""
    decoded: list[Decoded] = []
    failures: list[Failure] = []
    size = 0
    for unit in units:
        result = decoder.attempt(unit)
        if isinstance(result, Failure):
            failures.append(result)
            continue
        decoded.append(result)
        size += len(result.images)
        if size >= chunk:
            yield encode_decoded(decoded, failures, backend, backend.bits)
            decoded, failures, size = [], [], 0
    if decoded or failures:
        yield encode_decoded(decoded, failures, backend, backend.bits)
