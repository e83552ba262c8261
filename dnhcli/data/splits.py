"""Seeded, class-stratified splitting of a pooled dataset."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from dnhcli.data.defaults import DEFAULT_RATIOS as DEFAULT_RATIOS
from dnhcli.data.defaults import SPLITS as SPLITS
from dnhcli.errors import InputError


def parse_ratios(text: str) -> tuple[float, ...]:
    """'6:1:2:1' -> (6.0, 1.0, 2.0, 1.0): four positive numbers for train:val:gallery:query."""
    parts = text.replace(",", ":").split(":")
    try:
        ratios = tuple(float(p) for p in parts)
    except ValueError:
        ratios = ()
    if len(ratios) != len(SPLITS) or not all(np.isfinite(r) and r > 0 for r in ratios):
        raise InputError(
            f"malformed --ratios {text!r}",
            hint="give four positive numbers for train:val:gallery:query, e.g. 6:1:2:1",
        )
    return ratios


def allocate(n: int, ratios: Sequence[float]) -> np.ndarray:
    """Split `n` items by `ratios` with the largest-remainder rule (each count within 1 of
    its exact share), then make sure every split gets an item when there are enough."""
    shares = n * np.asarray(ratios, dtype=np.float64) / float(np.sum(ratios))
    counts = np.floor(shares).astype(np.int64)
    order = np.argsort(-(shares - counts), kind="stable")
    counts[order[: n - int(counts.sum())]] += 1
    if n >= len(counts):
        while (counts == 0).any():
            counts[np.argmax(counts)] -= 1
            counts[np.flatnonzero(counts == 0)[0]] += 1
    return counts


def stratified_split(classes: np.ndarray, ratios: Sequence[float], seed: int) -> list[np.ndarray]:
    """Indices of each split: every class is shuffled and cut by `ratios` on its own, then each
    split is shuffled so that the classes are interleaved (gallery order breaks ties later)."""
    rng = np.random.default_rng(seed)
    parts: list[list[np.ndarray]] = [[] for _ in ratios]
    for label in np.unique(classes):
        members = rng.permutation(np.flatnonzero(classes == label))
        for split, chunk in enumerate(np.split(members, np.cumsum(allocate(len(members), ratios))[:-1])):
            parts[split].append(chunk)
    return [rng.permutation(np.concatenate(p)) if p else np.zeros(0, np.int64) for p in parts]


def cap_per_class(classes: np.ndarray, limit: int, seed: int) -> np.ndarray:
    """Sorted indices keeping at most `limit` random items of each class."""
    if limit < 1:
        raise InputError(f"--max-per-class must be at least 1, got {limit}")
    rng = np.random.default_rng([seed, 1])
    kept = [
        rng.permutation(members)[:limit]
        for members in (np.flatnonzero(classes == c) for c in np.unique(classes))
    ]
    return np.sort(np.concatenate(kept)) if kept else np.zeros(0, np.int64)


def grouped_split(classes: np.ndarray, groups: np.ndarray, ratios: Sequence[float],
                  seed: int) -> list[np.ndarray]:
    """Indices of each split, whole groups (patients) at a time, so that no group lies in two
    splits. Each class's target counts come from `allocate`; groups go largest first (ties in
    seeded random order) to the split that still misses the largest share of its targets for
    the group's classes (so an empty split is served first), so the split is stratified as far
    as whole groups allow.
    Each split is then shuffled as in `stratified_split`."""
    rng = np.random.default_rng(seed)
    _, klass = np.unique(classes, return_inverse=True)
    _, group = np.unique(groups, return_inverse=True)
    counts = np.zeros((int(group.max(initial=-1)) + 1, int(klass.max(initial=-1)) + 1), np.int64)
    np.add.at(counts, (group, klass), 1)
    totals = counts.sum(0)
    wanted = np.stack([allocate(int(n), ratios) for n in totals]) if len(totals) else (
        np.zeros((0, len(ratios)), np.int64))  # (classes, splits)
    filled = np.zeros_like(wanted)
    order = rng.permutation(len(counts))
    order = order[np.argsort(-counts.sum(1)[order], kind="stable")]
    chosen = np.empty(len(counts), np.int64)
    for g in order:
        need = (counts[g][:, None] * (wanted - filled) / np.maximum(wanted, 1)).sum(0)
        chosen[g] = int(np.argmax(need))  # ties: the earlier split (train first)
        filled[:, chosen[g]] += counts[g]
    split_of = chosen[group]
    return [rng.permutation(np.flatnonzero(split_of == s)) for s in range(len(ratios))]
