"""Stage 2 of a search: quantised vectors, cosine scores, the order, and stage 1's whole tie."""

from __future__ import annotations

import numpy as np
import pytest

from dnhcli.errors import InputError
from dnhcli.index.codes import pack_codes
from dnhcli.index.rerank import (
    check_oversample,
    check_vectors,
    order,
    quantize_vectors,
    rerank_candidates,
    scores,
    two_stage_arrays,
)
from dnhcli.index.search import topk_ties


def test_quantize_rounds_and_clips() -> None:
    h = np.array([[1.0, -1.0, 0.5, -0.004, 2.0, -3.0, 0.0, 0.996]], np.float32)
    assert quantize_vectors(h).tolist() == [[127, -127, 64, -1, 127, -127, 0, 126]]
    assert quantize_vectors(h).dtype == np.int8
    with pytest.raises(InputError, match="NaN"):
        quantize_vectors(np.array([[np.nan, 0.0]]))
    with pytest.raises(InputError, match="2-D"):
        quantize_vectors(np.zeros(4))


def test_scores_are_cosines_by_hand() -> None:
    q = np.array([3.0, 4.0])
    vectors = np.array([[3, 4], [-3, -4], [4, -3], [0, 0], [6, 8]], np.int8)
    assert np.allclose(scores(q, vectors), [1.0, -1.0, 0.0, 0.0, 1.0])
    assert scores(q, vectors).dtype == np.float32


def test_order_is_score_then_hamming_then_id() -> None:
    score = np.array([0.5, 0.9, 0.9, 0.9, 0.1])
    hamming = np.array([0, 3, 2, 2, 0])
    ids = np.array([7, 1, 9, 4, 0])
    assert order(score, hamming, ids).tolist() == [3, 2, 1, 0, 4]


def test_rerank_candidates_keeps_each_query_best_k() -> None:
    lims = np.array([0, 3, 5])
    hamming = np.array([0, 1, 1, 2, 2], np.int32)
    ids = np.array([5, 2, 8, 1, 3], np.int64)
    vectors = np.array([[1, 0], [0, 1], [1, 1], [-1, 0], [1, 0]], np.int8)
    query_h = np.array([[0.0, 1.0], [1.0, 0.0]], np.float32)
    d, s, i = rerank_candidates(query_h, lims, hamming, ids, vectors, 2)
    assert i.tolist() == [[2, 8], [3, 1]]
    assert d.tolist() == [[1, 1], [2, 2]]
    assert np.allclose(s, [[1.0, np.sqrt(0.5)], [1.0, -1.0]])


def test_topk_ties_keeps_the_whole_tie_at_the_cut() -> None:
    bits = np.zeros((6, 16), np.uint8)
    bits[1, 0] = 1
    bits[2:, :2] = 1  # four codes tied at distance 2 behind the two nearest
    lims, dist, ids = topk_ties(pack_codes(np.zeros((1, 16), np.uint8)), pack_codes(bits), 3)
    assert lims.tolist() == [0, 6] and dist.tolist() == [0, 1, 2, 2, 2, 2]
    assert ids.tolist() == [0, 1, 2, 3, 4, 5]


def test_two_stage_finds_the_nearest_behind_a_thousand_ties() -> None:
    rng = np.random.default_rng(0)
    n, bits = 1201, 48
    codes = pack_codes(np.zeros((n, bits), np.uint8))  # every code equal: one tie of 1,201
    h = rng.uniform(-1, 1, (n, bits)).astype(np.float32)
    query_h = h[1100:1101] + 0.01
    _, s, ids = two_stage_arrays(codes[:1], query_h, codes, quantize_vectors(h), k=1, oversample=1)
    assert ids.tolist() == [[1100]] and s[0, 0] > 0.99


def test_checks_give_one_line_errors() -> None:
    with pytest.raises(InputError, match="oversample"):
        check_oversample(0)
    with pytest.raises(InputError, match="oversample"):
        check_oversample(True)
    with pytest.raises(InputError, match="int8"):
        check_vectors(np.zeros((2, 8), np.float32), 2, 8)
    with pytest.raises(InputError, match="shape"):
        check_vectors(np.zeros((2, 4), np.int8), 2, 8)


def _brute_ties(queries: np.ndarray, codes: np.ndarray, k: int) -> list[tuple[list[int], list[int]]]:
    from dnhcli.index.codes import hamming_distances

    out = []
    for row in hamming_distances(queries, codes):
        cut = np.sort(row)[min(k, len(row)) - 1]
        ids = [i for i in np.lexsort((np.arange(len(row)), row)) if row[i] <= cut]
        out.append((row[ids].tolist(), ids))
    return out


@pytest.mark.parametrize(("n", "k", "threads"), [(5000, 1, 1), (5000, 37, 2), (150_000, 100, 2),
                                                 (3000, 5000, 1)])
def test_topk_ties_kernel_equals_brute_force(n: int, k: int, threads: int) -> None:
    rng = np.random.default_rng(n + k)
    pool = rng.integers(0, 256, (40, 6), dtype=np.uint8)  # clustered: ties everywhere
    codes = pool[rng.integers(0, len(pool), n)] ^ (rng.random((n, 6)) < 0.05).astype(np.uint8)
    queries = np.concatenate([codes[:3], rng.integers(0, 256, (2, 6), dtype=np.uint8)])
    lims, dist, ids = topk_ties(queries, codes, k, threads=threads, engine="numba")
    for q, (want_d, want_i) in enumerate(_brute_ties(queries, codes, k)):
        assert dist[lims[q]:lims[q + 1]].tolist() == want_d
        assert ids[lims[q]:lims[q + 1]].tolist() == want_i


def test_a_tie_too_large_for_the_kernel_falls_back_to_the_same_items() -> None:
    codes = np.zeros((20_000, 6), np.uint8)
    codes[7, 0] = 1
    lims, dist, ids = topk_ties(codes[7:8], codes, 2, engine="numba")  # 19,999 tied at distance 1
    assert lims.tolist() == [0, 20_000] and ids[0] == 7 and dist[1:].tolist() == [1] * 19_999
