from __future__ import annotations

import numpy as np
import pytest

from dnhcli.data.splits import allocate, cap_per_class, grouped_split, parse_ratios, stratified_split
from dnhcli.errors import InputError

RATIOS = (6.0, 1.0, 2.0, 1.0)


@pytest.mark.parametrize("n", [0, 1, 3, 4, 9, 10, 11, 17, 99, 210, 4273])
def test_allocate_sums_and_stays_within_one_of_the_exact_share(n: int) -> None:
    counts = allocate(n, RATIOS)
    assert counts.sum() == n
    exact = n * np.array(RATIOS) / sum(RATIOS)
    if n >= 10:
        assert (np.abs(counts - exact) < 1).all()
        assert (counts >= 1).all()


def test_allocate_gives_every_split_an_item_when_shares_round_to_zero() -> None:
    counts = allocate(5, (100.0, 1.0, 1.0, 1.0))
    assert counts.sum() == 5 and (counts >= 1).all()


def test_stratified_split_is_disjoint_complete_stratified_and_seeded() -> None:
    classes = np.repeat(np.arange(5), [10, 37, 200, 11, 64])
    parts = stratified_split(classes, RATIOS, seed=3)
    joined = np.concatenate(parts)
    assert np.array_equal(np.sort(joined), np.arange(len(classes)))
    for label in range(5):
        counts = np.array([np.count_nonzero(classes[p] == label) for p in parts])
        assert np.array_equal(counts, allocate(np.count_nonzero(classes == label), RATIOS))
    again = stratified_split(classes, RATIOS, seed=3)
    assert all(np.array_equal(a, b) for a, b in zip(parts, again))
    other = stratified_split(classes, RATIOS, seed=4)
    assert not all(np.array_equal(a, b) for a, b in zip(parts, other))


def test_split_interleaves_classes_instead_of_sorting_them() -> None:
    classes = np.repeat(np.arange(4), 100)
    train = stratified_split(classes, RATIOS, seed=0)[0]
    assert not np.all(np.diff(classes[train]) >= 0)


@pytest.mark.parametrize("text,expected", [("6:1:2:1", (6, 1, 2, 1)),
                                           ("0.6,0.1,0.2,0.1", (0.6, 0.1, 0.2, 0.1))])
def test_parse_ratios(text: str, expected: tuple[float, ...]) -> None:
    assert parse_ratios(text) == pytest.approx(expected)


@pytest.mark.parametrize("text", ["6:1:2", "6:1:2:1:1", "6:1:x:1", "6:0:2:1", "6:-1:2:1", "", "nan:1:1:1"])
def test_parse_ratios_rejects_malformed(text: str) -> None:
    with pytest.raises(InputError, match="ratios"):
        parse_ratios(text)


def test_cap_per_class_keeps_at_most_limit_per_class() -> None:
    classes = np.repeat(np.arange(3), [5, 50, 500])
    kept = cap_per_class(classes, 20, seed=0)
    assert np.array_equal(np.bincount(classes[kept]), [5, 20, 20])
    assert np.array_equal(kept, cap_per_class(classes, 20, seed=0))
    with pytest.raises(InputError):
        cap_per_class(classes, 0, seed=0)


def test_grouped_split_keeps_each_group_whole_is_seeded_and_stratified() -> None:
    rng = np.random.default_rng(0)
    groups = np.repeat(np.arange(60), rng.integers(1, 6, 60))
    classes = groups % 3  # a patient's images share a class
    parts = grouped_split(classes, groups, RATIOS, seed=1)
    assert sorted(np.concatenate(parts).tolist()) == list(range(len(groups)))
    owners = [set(groups[p].tolist()) for p in parts]
    assert all(not owners[a] & owners[b] for a in range(4) for b in range(a + 1, 4))
    assert all(len(set(classes[p].tolist())) == 3 for p in parts)  # every class in every split
    again, other = (grouped_split(classes, groups, RATIOS, seed=s) for s in (1, 2))
    assert all(np.array_equal(a, b) for a, b in zip(parts, again))
    assert not all(np.array_equal(a, b) for a, b in zip(parts, other))
