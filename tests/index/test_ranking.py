"""Distance histograms, ranked classes and the asymmetric ranking against brute force."""

from __future__ import annotations

import numpy as np
import pytest

from dnhcli.errors import InputError
from dnhcli.index.codes import hamming_distances, pack_codes
from dnhcli.index.ranking import asymmetric_luts, asymmetric_rank, distance_histogram


def _data(bits: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    gallery = rng.integers(0, 2, (300, bits))
    gallery[:80] = gallery[0]  # a big group of identical codes
    h = rng.normal(size=(20, bits)).astype(np.float32)
    h[:5] = np.where(gallery[:5] > 0, 0.5, -0.5)  # queries at distance 0 of the big group
    classes = rng.integers(0, 4, 300)
    return pack_codes(h > 0), h, pack_codes(gallery.astype(bool)), classes


@pytest.mark.parametrize("bits", [8, 48, 64, 72, 128])
def test_histogram(bits: int) -> None:
    queries, _, gallery, classes = _data(bits)
    hist = distance_histogram(queries, gallery, classes, 4)
    dist = hamming_distances(queries, gallery)
    expected = np.zeros_like(hist)
    for q in range(len(queries)):
        np.add.at(expected[q], (dist[q], classes), 1)
    assert (hist == expected).all()


@pytest.mark.parametrize("bits", [16, 48, 128])
def test_asymmetric_rank_orders_ties_by_the_continuous_code(bits: int) -> None:
    queries, h, gallery, classes = _data(bits, seed=1)
    ids, groups = asymmetric_rank(queries, h, gallery, 40, classes, 4)
    bits_pm = np.unpackbits(gallery, axis=1).astype(bool)
    dist = hamming_distances(queries, gallery)
    for q in range(len(queries)):
        weight = ((bits_pm != (h[q] > 0)) * np.abs(h[q])).sum(axis=1)  # ||h - b||^2 up to constants
        order = np.lexsort((np.arange(len(gallery)), weight, dist[q]))
        assert ids[q].tolist() == order[:40].tolist()
        assert groups[q].sum() >= 40  # tie groups are counted in full
        assert (np.diff(dist[q][ids[q]]) >= 0).all()  # Hamming distance stays the first key


def test_asymmetric_luts_sum_the_disagreeing_magnitudes() -> None:
    h = np.array([[0.1, -0.2, 0.3, -0.4, 0.5, -0.6, 0.7, -0.8]])
    lut = asymmetric_luts(h)
    assert lut.shape == (1, 1, 256)
    assert lut[0, 0, 0b10000001] == pytest.approx(0.1 + 0.8)  # big-endian: bit 0 is the top bit


def test_bad_inputs() -> None:
    queries, h, gallery, classes = _data(16)
    with pytest.raises(InputError):
        distance_histogram(queries, gallery, classes[:10], 4)
    with pytest.raises(InputError):
        distance_histogram(queries, gallery, classes, 2)  # classes out of range
    with pytest.raises(InputError):
        asymmetric_rank(queries, h[:, :8], gallery, 5, classes, 4)
