"""Instance recall (tie-aware), mean tie size, likeness ratio and the two-stage class figures,
against hand-computed cases and plain implementations of their definitions."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from dnhcli.errors import InputError
from dnhcli.evaluation.alterations import ALTERATION_NAMES
from dnhcli.evaluation.instance import (
    expected_hits,
    hamming_hits,
    instance_recall,
    likeness_ratio,
    two_stage_hits,
)
from dnhcli.evaluation.metrics import average_precision_at_ks, majority_vote_at_ks
from dnhcli.evaluation.two_stage import evaluate_two_stage
from dnhcli.index.codes import codes_from_continuous, hamming_distances, mean_tie_size, pack_codes
from dnhcli.index.rerank import quantize_vectors, scores, two_stage_arrays


def test_expected_hits_by_hand() -> None:
    ahead, tied = np.array([0, 0, 3, 9, 0]), np.array([1, 4, 2, 5, 0])
    assert expected_hits(ahead, tied, 1).tolist() == [1.0, 0.25, 0.0, 0.0, 0.0]
    assert expected_hits(ahead, tied, 4).tolist() == [1.0, 1.0, 0.5, 0.0, 0.0]
    assert expected_hits(ahead, tied, 10).tolist() == [1.0, 1.0, 1.0, 0.2, 0.0]


def test_hamming_hits_with_a_two_way_tie() -> None:
    gallery = np.array([[0x00], [0x00], [0xFF], [0x0F]], np.uint8)
    queries = np.array([[0x00], [0x01], [0xFE]], np.uint8)
    hits = hamming_hits(queries, gallery, np.array([0, 3, 2]), (1, 2, 10))
    # query 0: its original shares code 0x00 with item 1 -> hit@1 = 1/2
    # query 1: two items at distance 1 ahead of the original (distance 3)
    # query 2: the original (distance 1) is first, alone
    assert hits[1].tolist() == [0.5, 0.0, 1.0]
    assert hits[2].tolist() == [1.0, 0.0, 1.0]
    assert hits[10].tolist() == [1.0, 1.0, 1.0]


def test_two_stage_hits_ties_and_missing_candidates() -> None:
    h = np.array([[0.9, 0.5, -0.4, 0.2, 0.7, -0.8, 0.3, 0.6],
                  [0.9, 0.5, -0.4, 0.2, 0.7, -0.8, 0.3, 0.6],  # the same image twice
                  [-0.9, -0.5, 0.4, -0.2, -0.7, 0.8, -0.3, -0.6],
                  [0.8, 0.4, -0.5, 0.3, 0.6, -0.7, 0.4, 0.5]], np.float32)
    gallery, vectors = codes_from_continuous(h), quantize_vectors(h)
    hits = two_stage_hits(gallery[[0, 3]], h[[0, 3]], gallery, vectors, np.array([1, 3]), (1, 10), 1)
    assert hits[1].tolist() == [0.5, 1.0] and hits[10].tolist() == [1.0, 1.0]
    # the opposite image is not a candidate of a search for 1 (oversample 1): it scores 0
    far = two_stage_hits(gallery[[0]], h[[0]], gallery, vectors, np.array([2]), (1, 10), 1)
    assert far[1].tolist() == [0.0] and far[10].tolist() == [1.0]


def _tiny(seed: int, n: int = 6, bits: int = 8) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    levels = np.array([-0.9, -0.3, 0.3, 0.9], np.float32)
    base = rng.choice(levels, (3, bits))
    gh = base[rng.integers(0, 3, n)]  # duplicates: equal scores and distances tie
    qh = rng.choice(levels, (4, bits)).astype(np.float32)
    gl, ql = rng.integers(0, 2, (n, 2)), rng.integers(0, 2, (4, 2))
    return codes_from_continuous(qh), qh, codes_from_continuous(gh), quantize_vectors(gh), ql, gl


@pytest.mark.parametrize("seed", range(4))
def test_two_stage_hits_match_every_order_of_the_ties(seed: int) -> None:
    qc, qh, gc, vectors, _, _ = _tiny(seed)
    originals = np.arange(4) % len(gc)
    hits = two_stage_hits(qc, qh, gc, vectors, originals, (1, 2), 1)
    dist = hamming_distances(qc, gc)
    for q in range(len(qc)):
        for k in (1, 2):
            cand = np.flatnonzero(dist[q] <= np.sort(dist[q])[k - 1])
            s = scores(qh[q], vectors[cand]).astype(np.float64)
            found = [originals[q] in cand[np.lexsort((np.array(p), dist[q][cand], -s))[:k]]
                     for p in itertools.permutations(range(len(cand)))]
            assert hits[k][q] == pytest.approx(np.mean(found))


def test_two_stage_figures_match_the_search_and_the_tie_orders() -> None:
    qc, qh, gc, vectors, ql, gl = _tiny(7)
    ks = (2, 3, 50)
    ev = evaluate_two_stage(qc, qh, gc, vectors, ql, gl, ks, oversample=1)
    classes = gl[:, 0] * 2 + gl[:, 1]
    dist = hamming_distances(qc, gc)
    for k in ks:
        ids = two_stage_arrays(qc, qh, gc, vectors, k, 1)[2]
        rel = (gl[ids] == ql[:, None, :]).all(axis=2)
        assert ev.figures["strict"][f"mAP@{k}"] == pytest.approx(average_precision_at_ks(rel, (k,))[k])
        assert ev.figures["strict"][f"P@{k}"] == pytest.approx(rel.mean(axis=1))
        votes = majority_vote_at_ks(classes[ids], ql[:, 0] * 2 + ql[:, 1], (k,))[k]
        assert ev.figures["strict"][f"mMV@{k}"].tolist() == votes.tolist()
        for q in range(len(qc)):  # tie-aware: the mean over every order of equal (score, distance)
            cand = np.flatnonzero(dist[q] <= np.sort(dist[q])[min(k, len(gc)) - 1])
            s = scores(qh[q], vectors[cand]).astype(np.float64)
            aps, ps = [], []
            for p in itertools.permutations(range(len(cand))):
                top = cand[np.lexsort((np.array(p), dist[q][cand], -s))[:k]]
                r = (gl[top] == ql[q]).all(axis=1)[None]
                aps.append(average_precision_at_ks(r, (k,))[k][0])
                ps.append(r.mean())
            assert ev.figures["tie_aware.strict"][f"mAP@{k}"][q] == pytest.approx(np.mean(aps))
            assert ev.figures["tie_aware.strict"][f"P@{k}"][q] == pytest.approx(np.mean(ps))
    summary = ev.summary()
    assert set(summary) == {"reference", "strict", "tie_aware"}
    assert list(summary["strict"]) == [f"{n}@{k}" for n in ("mAP", "nDCG", "P", "mMV") for k in ks]
    assert ev.counts["oversample"] == 1 and ev.counts["queries_cut_inside_a_tie@2"] > 0  # ties were met


def test_mean_tie_size() -> None:
    codes = np.array([[1], [1], [2], [3]], np.uint8)
    assert mean_tie_size(codes) == 1.5  # (2 + 2 + 1 + 1) / 4
    assert mean_tie_size(np.zeros((0, 1), np.uint8)) == 0.0
    assert mean_tie_size(np.zeros((5, 2), np.uint8)) == 5.0


def test_likeness_ratio_by_hand() -> None:
    query = np.zeros((1, 1, 2), np.uint8)
    gallery = np.array([[[3, 4]], [[6, 8]], [[0, 10]], [[9, 12]], [[1, 1]]], np.uint8)  # L2 5, 10, 10, 15
    gclass = np.array([0, 0, 0, 0, 1])
    out = likeness_ratio(query, gallery, np.array([0]), gclass, np.array([[0, 4]]))
    assert out == {"ratio": pytest.approx(5 / 10, abs=1e-4), "queries": 1}  # 5 / mean(5, 10, 10, 15)
    none = likeness_ratio(query, gallery, np.array([0]), gclass, np.array([[4]]))
    assert none == {"ratio": None, "queries": 0}


def test_instance_recall_with_a_pixel_encoder() -> None:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (40, 28, 28), dtype=np.uint8)
    weights = rng.standard_normal((784, 32)).astype(np.float32)

    def encode(batch: np.ndarray) -> np.ndarray:
        x = batch.reshape(len(batch), -1).astype(np.float32) / 255.0 - 0.5
        return np.tanh(x @ weights / 4.0)

    h = encode(images)
    out = instance_recall(encode, images, pack_codes(h >= 0), quantize_vectors(h), sample=25, seed=1)
    assert out["sample"] == 25 and out["gallery"] == 40 and out["alterations"] == list(ALTERATION_NAMES)
    for ranking in ("hamming", "two_stage"):
        assert set(out[ranking]) == set(ALTERATION_NAMES)
        assert out[ranking]["exact"] == {"recall@1": 1.0, "recall@10": 1.0}
        for figures in out[ranking].values():
            assert 0.0 <= figures["recall@1"] <= figures["recall@10"] <= 1.0
    without = instance_recall(encode, images, pack_codes(h >= 0), None, sample=100, alterations=("exact",))
    assert without["two_stage"] is None and without["sample"] == 40
    with pytest.raises(InputError, match="--instance-sample"):
        instance_recall(encode, images, pack_codes(h >= 0), None, sample=0)
