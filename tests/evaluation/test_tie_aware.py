"""Tie-aware figures equal the mean over every order of the tied items (exhaustive)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from dnhcli.evaluation.tie_aware import TieGroups


def _orders(groups: list[list[int]]) -> list[list[int]]:
    """Every distinct sequence the groups allow (each equally likely under a random order)."""
    per_group = [sorted(set(itertools.permutations(g))) for g in groups]
    return [[x for part in combo for x in part] for combo in itertools.product(*per_group)]


def _ap(seq: list[int], k: int) -> float:
    hits, total = 0, 0.0
    for m, rel in enumerate(seq[:k], 1):
        if rel:
            hits += 1
            total += hits / m
    return total / hits if hits else 0.0


@pytest.mark.parametrize("seed", range(40))
def test_matches_exhaustive_enumeration(seed: int) -> None:
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 4, rng.integers(1, 4))
    relevant = np.array([rng.integers(0, s + 1) for s in sizes])
    grade_two = np.array([rng.integers(0, r + 1) for r in relevant])  # of the relevant, gain 3
    n = int(sizes.sum())
    k = int(rng.integers(1, n + 2))
    groups = [[2] * t + [1] * (r - t) + [0] * (s - r) for s, r, t in zip(sizes, relevant, grade_two)]
    orders = _orders(groups)
    cut = min(k, n)
    tie = TieGroups(sizes[None], k)
    expect_ap = np.mean([_ap([g > 0 for g in o], cut) for o in orders])
    expect_p = np.mean([sum(g > 0 for g in o[:cut]) / cut for o in orders])
    gain = {2: 3.0, 1: 1.0, 0: 0.0}
    expect_dcg = np.mean([sum(gain[g] / math.log2(m + 2) for m, g in enumerate(o[:cut])) for o in orders])
    assert tie.expected_ap(relevant[None])[0] == pytest.approx(expect_ap, abs=1e-12)
    assert tie.expected_precision(relevant[None])[0] == pytest.approx(expect_p, abs=1e-12)
    gains = 3 * grade_two + (relevant - grade_two)
    assert tie.expected_dcg(gains[None])[0] == pytest.approx(expect_dcg, abs=1e-12)


def test_one_big_tie_by_hand() -> None:
    # 10 tied items, 5 relevant, cut at 1: P@1 = AP@1 = 1/2
    tie = TieGroups(np.array([[10]]), 1)
    assert tie.expected_ap(np.array([[5]]))[0] == pytest.approx(0.5)
    assert tie.expected_precision(np.array([[5]]))[0] == pytest.approx(0.5)
    assert tie.boundary.tolist() == [True]


def test_without_ties_the_figures_are_the_plain_ones() -> None:
    sizes = np.ones((1, 5), np.int64)
    relevant = np.array([[1, 0, 1, 0, 0]])
    tie = TieGroups(sizes, 4)
    assert tie.expected_ap(relevant)[0] == pytest.approx((1 + 2 / 3) / 2)
    assert not tie.boundary.any()
