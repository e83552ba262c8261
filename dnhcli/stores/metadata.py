"""Metadata records of a hash database: one compact JSON line per item, checked on the way in."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from dnhcli.errors import InputError

MAX_DEPTH = 32  # nesting levels allowed in a metadata record


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable")


def encode_metadata(metadata: Sequence[Mapping[str, Any]] | None,
                    n: int) -> tuple[list[bytes], dict[int, Any]]:
    """One JSON line per item, and the ids the caller gave (position -> id) to check later."""
    if metadata is None:
        return [b"{}\n"] * n, {}
    if isinstance(metadata, (str, bytes, Mapping)) or not isinstance(metadata, Sequence):
        raise InputError(f"metadata must be a list of dicts, one per code, got {type(metadata).__name__}")
    if len(metadata) != n:
        raise InputError(f"{len(metadata)} metadata records given for {n} codes",
                         hint="give exactly one metadata dict per code, in the same order")
    lines, given = [], {}
    for i, record in enumerate(metadata):
        if not isinstance(record, Mapping) or not all(isinstance(key, str) for key in record):
            raise InputError(f"metadata record {i} must be a dict with string keys, got {record!r:.80}")
        record = dict(record)
        if "id" in record:
            given[i] = record.pop("id")
        try:
            _check_nesting(record, MAX_DEPTH)
            text = json.dumps(record, ensure_ascii=False, allow_nan=False, separators=(",", ":"),
                              default=_json_default)
            lines.append(text.encode("utf-8") + b"\n")  # a lone surrogate fails here
        except (TypeError, ValueError) as exc:
            raise InputError(f"metadata record {i} is not JSON-serialisable: {exc}",
                             hint="use str, int, float, bool, None, lists and dicts with string keys "
                                  f"(at most {MAX_DEPTH} levels); NaN and infinity are not allowed") from None
    return lines, given


def _check_nesting(value: Any, depth: int) -> None:
    """ValueError for a dict key that is not a string at any level (json.dumps would turn it
    into one, and keys 1 and "1" would collide) or for nesting deeper than MAX_DEPTH."""
    if depth < 0:
        raise ValueError(f"nested deeper than {MAX_DEPTH} levels")
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValueError(f"key {key!r} is not a string")
            _check_nesting(item, depth - 1)
    elif isinstance(value, (list, tuple)):
        for item in value:
            _check_nesting(item, depth - 1)


def item_keys(metadata: Sequence[Mapping[str, Any]] | None, n: int) -> list[str | None]:
    """Each item's "key" (a non-empty string, unique in the batch) or None."""
    if metadata is None:
        return [None] * n
    keys: list[str | None] = []
    for i, record in enumerate(metadata):
        key = record.get("key")
        if key is not None and (not isinstance(key, str) or not key):
            raise InputError(f"metadata record {i} has key {key!r}; a key is a non-empty string")
        keys.append(key)
    given = [k for k in keys if k is not None]
    if len(set(given)) != len(given):
        seen: set[str] = set()
        twice = next(k for k in given if k in seen or seen.add(k))  # type: ignore[func-returns-value]
        raise InputError(f"key {twice!r} is given twice in one batch", hint="keys are unique")
    return keys


# the key index of a segment: (blake2b-64 of the key, local index), sorted
KEY_DTYPE = np.dtype([("hash", "<u8"), ("local", "<u8")])


def key_hash(key: str) -> int:
    """The 64-bit hash a key is indexed by (collisions are resolved by the stored key)."""
    return int.from_bytes(hashlib.blake2b(key.encode("utf-8"), digest_size=8).digest(), "little")


def key_index(keys: Sequence[str | None], base: int = 0) -> np.ndarray:
    """The sorted key index of items whose key is given (local index = base + position)."""
    rows = [(key_hash(k), base + i) for i, k in enumerate(keys) if k is not None]
    index = np.array(rows, dtype=KEY_DTYPE) if rows else np.zeros(0, KEY_DTYPE)
    return np.sort(index, order=("hash", "local"))
