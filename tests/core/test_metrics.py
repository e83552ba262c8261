from __future__ import annotations

import numpy as np
import pytest

from dnhcli.core.codes import pack_codes
from dnhcli.core.errors import InputError
from dnhcli.core.metrics import average_precision_at_k, map_at_k
from dnhcli.core.search import topk as top_k


def _codes(rows: list[list[int]]) -> np.ndarray:
    return pack_codes(np.array(rows, dtype=np.uint8))


def test_top_k_orders_by_distance_then_gallery_order() -> None:
    q = _codes([[0] * 8])
    g = _codes([[1] * 8, [1, 0, 0, 0, 0, 0, 0, 0], [0] * 8, [0, 1, 0, 0, 0, 0, 0, 0], [0] * 8])
    dist, idx = top_k(q, g, 4)
    assert idx.tolist() == [[2, 4, 1, 3]] and dist.tolist() == [[0, 0, 1, 1]]
    dist, idx = top_k(q, g, 50)  # k larger than the gallery
    assert idx.tolist() == [[2, 4, 1, 3, 0]] and dist.tolist() == [[0, 0, 1, 1, 8]]


def test_average_precision_by_hand() -> None:
    rel = np.array([[1, 0, 1, 0], [0, 0, 0, 0], [0, 1, 1, 1]])
    ap = average_precision_at_k(rel)
    assert ap[0] == pytest.approx((1 / 1 + 2 / 3) / 2)
    assert ap[1] == 0.0
    assert ap[2] == pytest.approx((1 / 2 + 2 / 3 + 3 / 4) / 3)


def test_map_at_k_by_hand_with_organ_and_strict_relevance() -> None:
    q = _codes([[0] * 8])
    g = _codes([[0] * 8, [1] + [0] * 7, [1, 1] + [0] * 6])
    q_labels = np.array([[0, 1]])
    g_labels = np.array([[0, 0], [0, 1], [1, 1]])
    assert map_at_k(q, g, q_labels[:, 0], g_labels[:, 0], 3) == pytest.approx(1.0)
    assert map_at_k(q, g, q_labels, g_labels, 3) == pytest.approx(1 / 2)
    with pytest.raises(InputError):
        top_k(q, g, 0)
