"""`evaluate_codes` against a plain per-query implementation, and its rules."""

from __future__ import annotations

import math

import numpy as np
import pytest

from dnhcli.errors import InputError
from dnhcli.evaluation.protocol import evaluate_codes
from dnhcli.index.codes import hamming_distances, pack_codes


def _clustered(n: int, bits: int, rng: np.random.Generator, centers: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    labels = rng.integers(0, len(centers), n)
    flips = rng.random((n, bits)) < 0.08
    signs = centers[labels] ^ flips
    h = np.where(signs, 1.0, -1.0) * rng.uniform(0.05, 1.0, (n, bits))
    return pack_codes(signs.astype(bool)), np.stack([labels // 2, labels % 2], axis=1), h.astype(np.float32)


def _brute(qc, gc, ql, gl, ks, radius, qh=None):  # type: ignore[no-untyped-def]
    """Every figure from its definition, one query at a time."""
    dist = hamming_distances(qc, gc)
    gbits = np.unpackbits(gc, axis=1).astype(bool)
    out: dict[str, list[float]] = {}
    for q in range(len(qc)):
        if qh is None:
            order = np.lexsort((np.arange(len(gc)), dist[q]))
        else:
            weight = ((gbits != (qh[q] > 0)) * np.abs(qh[q])).sum(axis=1)
            order = np.lexsort((np.arange(len(gc)), weight, dist[q]))
        same_organ = gl[:, 0] == ql[q, 0]
        same = same_organ & (gl[:, 1] == ql[q, 1])
        grade = np.where(same, 2, np.where(same_organ, 1, 0))
        for k in ks:
            top = order[:k]
            for name, rel in (("ref_map", same_organ[top]), ("strict_map", same[top])):
                hits = np.cumsum(rel)
                ap = sum(hits[m] / (m + 1) for m in range(len(top)) if rel[m])
                out.setdefault(f"{name}@{k}", []).append(ap / hits[-1] if hits[-1] else 0.0)
            gains = [2.0 ** grade[i] - 1 for i in top]
            dcg = sum(g / math.log2(m + 2) for m, g in enumerate(gains))
            ideal_ref = sum(g / math.log2(m + 2) for m, g in enumerate(sorted(gains, reverse=True)))
            best = sorted((2.0 ** grade - 1).tolist(), reverse=True)[:len(top)]
            ideal_std = sum(g / math.log2(m + 2) for m, g in enumerate(best))
            out.setdefault(f"ref_ndcg@{k}", []).append(dcg / ideal_ref if ideal_ref else float("nan"))
            out.setdefault(f"std_ndcg@{k}", []).append(dcg / ideal_std if ideal_std else 0.0)
            out.setdefault(f"p@{k}", []).append(same[top].sum() / len(top))
        within = dist[q] <= radius
        out.setdefault("p@r", []).append(same[within].sum() / within.sum() if within.any() else 0.0)
    return out


@pytest.mark.parametrize("tie_break", ["gallery-order", "asymmetric"])
def test_matches_the_definitions_on_random_data(tie_break: str) -> None:
    rng = np.random.default_rng(3)
    centers = rng.integers(0, 2, (6, 16)).astype(bool)
    qc, ql, qh = _clustered(40, 16, rng, centers)
    gc, gl, _ = _clustered(150, 16, rng, centers)
    ks = (1, 10, 200)
    asym = tie_break == "asymmetric"
    ev = evaluate_codes(qc, gc, ql, gl, ks, query_h=qh if asym else None, tie_break=tie_break,
                        radius=2, chunk_elements=300)  # several chunks
    brute = _brute(qc, gc, ql, gl, ks, 2, qh if asym else None)
    for k in ks:
        np.testing.assert_allclose(ev.figures["reference"][f"mAP@{k}"], brute[f"ref_map@{k}"], atol=1e-12)
        np.testing.assert_allclose(ev.figures["strict"][f"mAP@{k}"], brute[f"strict_map@{k}"], atol=1e-12)
        np.testing.assert_allclose(ev.figures["reference"][f"nDCG@{k}"], brute[f"ref_ndcg@{k}"], atol=1e-12)
        np.testing.assert_allclose(ev.figures["strict"][f"nDCG@{k}"], brute[f"std_ndcg@{k}"], atol=1e-12)
        np.testing.assert_allclose(ev.figures["strict"][f"P@{k}"], brute[f"p@{k}"], atol=1e-12)
    np.testing.assert_allclose(ev.figures["strict"]["P@r2"], brute["p@r"], atol=1e-12)
    summary = ev.to_json()
    assert summary["strict"]["mAP@10"] == pytest.approx(np.mean(brute["strict_map@10"]), abs=1e-6)
    assert set(summary["per_organ"]) == {"0", "1", "2"}


def test_collapsed_codes_tie_aware_is_the_expected_value() -> None:
    # one code for everything: gallery order decides the plain figures, the tie-aware ones do not
    gc = np.zeros((4, 1), np.uint8)
    gl = np.array([[0, 1], [0, 1], [0, 0], [0, 0]])
    ev = evaluate_codes(np.zeros((1, 1), np.uint8), gc, np.array([[0, 0]]), gl, (1, 2))
    assert ev.figures["strict"]["P@1"].tolist() == [0.0]  # the first stored item is a miss
    assert ev.figures["tie_aware.strict"]["P@1"].tolist() == [0.5]
    assert ev.figures["tie_aware.strict"]["mAP@1"][0] == pytest.approx(0.5)
    # AP@2: orders of the top 2 drawn from {r, r, n, n}: P(rr) = 1/6, P(rn) = P(nr) = 1/3, P(nn) = 1/6
    expected = 1 / 6 * 1 + 1 / 3 * 1 + 1 / 3 * 0.5 + 1 / 6 * 0
    assert ev.figures["tie_aware.strict"]["mAP@2"][0] == pytest.approx(expected)
    assert ev.counts["queries_cut_inside_a_tie@1"] == 1


def test_one_item_gallery_and_k_beyond_it() -> None:
    ev = evaluate_codes(np.zeros((2, 1), np.uint8), np.zeros((1, 1), np.uint8),
                        np.array([[0, 0], [1, 0]]), np.array([[0, 0]]), (10,))
    assert ev.figures["strict"]["mAP@10"].tolist() == [1.0, 0.0]
    assert ev.figures["strict"]["P@10"].tolist() == [1.0, 0.0]
    assert ev.figures["tie_aware.strict"]["P@10"].tolist() == [1.0, 0.0]
    assert np.isnan(ev.figures["reference"]["nDCG@10"][1])
    assert ev.to_json()["reference"]["nDCG@10"] == 1.0  # the left-out query is not averaged


def test_bad_arguments() -> None:
    codes, labels = np.zeros((2, 1), np.uint8), np.zeros((2, 2), np.int64)
    with pytest.raises(InputError):
        evaluate_codes(codes, codes, labels, labels, (0,))
    with pytest.raises(InputError):
        evaluate_codes(codes, codes, labels, labels, tie_break="asymmetric")  # needs query_h
    with pytest.raises(InputError):
        evaluate_codes(codes, codes, labels[:, :1], labels)
    with pytest.raises(InputError):
        evaluate_codes(codes, codes[:0], labels, labels[:0])
    with pytest.raises(InputError):
        evaluate_codes(codes, codes, labels, labels, radius=9)
