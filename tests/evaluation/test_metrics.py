"""Each metric on small cases worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from dnhcli.evaluation.metrics import (
    average_precision_at_k,
    average_precision_at_ks,
    dcg_figures,
    majority_vote_at_ks,
    precision_at_ks,
    radius_curves,
)


def test_average_precision_by_hand() -> None:
    rel = np.array([[1, 0, 1, 0], [0, 0, 0, 0], [0, 1, 1, 1]])
    ap = average_precision_at_k(rel)
    assert ap[0] == pytest.approx((1 / 1 + 2 / 3) / 2)
    assert ap[1] == 0.0  # no relevant item: 0, and the query still counts in the mean
    assert ap[2] == pytest.approx((1 / 2 + 2 / 3 + 3 / 4) / 3)


def test_average_precision_at_several_cutoffs_and_k_beyond_the_list() -> None:
    rel = np.array([[0, 1, 0, 1]])
    ap = average_precision_at_ks(rel, (1, 2, 10))
    assert ap[1][0] == 0.0
    assert ap[2][0] == pytest.approx(1 / 2)
    assert ap[10][0] == pytest.approx((1 / 2 + 2 / 4) / 2)  # k > gallery: the whole list


def test_one_item_gallery() -> None:
    assert average_precision_at_ks(np.array([[1]]), (10,))[10].tolist() == [1.0]
    assert precision_at_ks(np.array([[1]]), (10,))[10].tolist() == [1.0]  # divided by the list length


def _dcg(gains: list[float]) -> float:
    return sum(g / math.log2(m + 2) for m, g in enumerate(gains))


def test_ndcg_reference_and_standard_by_hand() -> None:
    grades = np.array([[1, 0, 2], [0, 0, 0]])
    # query 0: same class 4 times and same organ 6 times (incl. those 4) in the whole gallery
    reference, standard = dcg_figures(grades, (3,), np.array([4, 0]), np.array([6, 0]))
    got = _dcg([1, 0, 3])
    assert reference[3][0] == pytest.approx(got / _dcg([3, 1, 0]))  # ideal: the top 3 re-sorted
    assert standard[3][0] == pytest.approx(got / _dcg([3, 3, 3]))  # ideal: the best 3 of the gallery
    assert math.isnan(reference[3][1])  # nothing relevant in the top k: left out of the mean
    assert standard[3][1] == 0.0  # nothing relevant in the gallery: 0


def test_ndcg_standard_with_few_relevant_items() -> None:
    _, standard = dcg_figures(np.array([[0, 2, 1]]), (2, 3), np.array([1]), np.array([2]))
    assert standard[2][0] == pytest.approx(_dcg([0, 3]) / _dcg([3, 1]))
    assert standard[3][0] == pytest.approx(_dcg([0, 3, 1]) / _dcg([3, 1]))


def test_precision_at_k() -> None:
    p = precision_at_ks(np.array([[1, 0, 1, 1], [0, 0, 0, 0]]), (1, 2, 4))
    assert p[1].tolist() == [1.0, 0.0] and p[2].tolist() == [0.5, 0.0] and p[4].tolist() == [0.75, 0.0]


def test_radius_curves_by_hand() -> None:
    relevant = np.array([[1, 0, 2], [0, 0, 0]])
    retrieved = np.array([[1, 2, 3], [0, 0, 5]])
    precision, recall = radius_curves(relevant, retrieved)
    assert precision[0].tolist() == pytest.approx([1.0, 1 / 3, 3 / 6])
    assert recall[0].tolist() == pytest.approx([1 / 3, 1 / 3, 1.0])
    assert precision[1].tolist() == [0.0, 0.0, 0.0]  # nothing within radius: precision 0
    assert recall[1].tolist() == [0.0, 0.0, 0.0]  # nothing relevant in the gallery: recall 0


def test_majority_vote_counts_the_top_k_and_breaks_ties_by_the_nearest_item() -> None:
    ranked = np.array([[1, 2, 2, 1, 0],    # votes: k=3 -> 2 wins; k=4 -> 1 and 2 tie, 1 is nearer
                       [0, 1, 2, 3, 4],    # every class once: the nearest item's class wins
                       [3, 3, 1, 1, 1]])   # 3 leads until the fifth item makes 1 the majority
    query = np.array([2, 0, 1])
    votes = majority_vote_at_ks(ranked, query, (1, 3, 4, 5))
    assert votes[1].tolist() == [0.0, 1.0, 0.0]
    assert votes[3].tolist() == [1.0, 1.0, 0.0]
    assert votes[4].tolist() == [0.0, 1.0, 0.0]
    assert votes[5].tolist() == [0.0, 1.0, 1.0]


def test_majority_vote_with_k_beyond_the_ranked_list_uses_every_item() -> None:
    ranked = np.array([[4, 0, 0]])
    votes = majority_vote_at_ks(ranked, np.array([0]), (2, 3, 1000))
    assert votes[2].tolist() == [0.0]  # 4 and 0 tie at one vote each: 4 is nearer
    assert votes[3].tolist() == votes[1000].tolist() == [1.0]
    empty = majority_vote_at_ks(np.zeros((2, 0), np.int64), np.array([0, 1]), (10,))
    assert empty[10].tolist() == [0.0, 0.0]  # nothing retrieved: no vote won
