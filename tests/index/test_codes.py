"""Tests of dnhcli.index.codes: bit rule, packing order, Hamming distances, statistics."""

from __future__ import annotations

import numpy as np
import pytest

from dnhcli.errors import InputError
from dnhcli.index.codes import (
    codes_from_continuous,
    distinct_codes,
    fragile_fraction,
    hamming_distances,
    pack_codes,
    sign_bits,
    unpack_codes,
    validate_bits,
)

ALL_BITS = list(range(8, 129, 8))


def brute_force_hamming(queries: np.ndarray, gallery: np.ndarray) -> np.ndarray:
    q_bits, g_bits = unpack_codes(queries), unpack_codes(gallery)
    return (q_bits[:, None, :] != g_bits[None, :, :]).sum(axis=2)


@pytest.mark.parametrize("bits", ALL_BITS)
def test_pack_unpack_round_trip(bits: int) -> None:
    rng = np.random.default_rng(bits)
    raw = rng.integers(0, 2, size=(9, bits), dtype=np.uint8)
    packed = pack_codes(raw)
    assert packed.dtype == np.uint8
    assert packed.shape == (9, bits // 8)
    np.testing.assert_array_equal(unpack_codes(packed, bits=bits), raw)
    np.testing.assert_array_equal(unpack_codes(packed), raw)
    np.testing.assert_array_equal(pack_codes(raw.astype(bool)), packed)


def test_bit_order_is_big_endian_within_each_byte() -> None:
    raw = np.zeros((1, 16), dtype=np.uint8)
    raw[0, [0, 7, 9, 15]] = 1
    # byte 0: component 0 is bit 7 (128), component 7 is bit 0 (1) -> 129
    # byte 1: component 9 is bit 6 (64), component 15 is bit 0 (1) -> 65
    np.testing.assert_array_equal(pack_codes(raw), [[129, 65]])
    np.testing.assert_array_equal(unpack_codes(np.array([[129, 65]], dtype=np.uint8)), raw)


def test_sign_bits_maps_zero_to_one() -> None:
    h = np.array([[-0.5, 0.0, 0.3, -0.0, -1e-9, 1e-9, 1.0, -1.0]])
    np.testing.assert_array_equal(sign_bits(h), [[0, 1, 1, 1, 0, 1, 1, 0]])
    assert sign_bits(h).dtype == np.uint8


def test_sign_bits_rejects_nan() -> None:
    with pytest.raises(InputError):
        sign_bits(np.array([[0.1, np.nan]]))


def test_codes_from_continuous_by_hand() -> None:
    h = np.array([[0.9, -0.2, 0.0, -0.7, 0.1, 0.1, -0.1, 0.5]], dtype=np.float32)
    # bits 1 0 1 0 1 1 0 1 -> 0b10101101 = 173
    np.testing.assert_array_equal(codes_from_continuous(h), [[173]])


@pytest.mark.parametrize("bits", [8, 24, 48, 72, 128])
@pytest.mark.parametrize("chunk_size", [None, 1, 3, 1000])
def test_hamming_matches_brute_force_with_ties(bits: int, chunk_size: int | None) -> None:
    rng = np.random.default_rng(bits)
    # A small pool of codes, so many query-gallery distances tie (including at 0).
    pool = rng.integers(0, 2, size=(6, bits), dtype=np.uint8)
    gallery = pack_codes(pool[rng.integers(0, 6, size=40)])
    queries = pack_codes(pool[rng.integers(0, 6, size=7)])
    got = hamming_distances(queries, gallery, chunk_size=chunk_size)
    assert got.shape == (7, 40)
    np.testing.assert_array_equal(got, brute_force_hamming(queries, gallery))
    assert (got == 0).any()


def test_hamming_extreme_values_and_empty_queries() -> None:
    zeros = np.zeros((1, 16), dtype=np.uint8)
    ones = np.full((1, 16), 255, dtype=np.uint8)
    np.testing.assert_array_equal(hamming_distances(zeros, np.vstack([zeros, ones])), [[0, 128]])
    assert hamming_distances(zeros[:0], ones).shape == (0, 1)


def test_hamming_rejects_mismatched_or_unpacked_codes() -> None:
    with pytest.raises(InputError):
        hamming_distances(np.zeros((2, 6), np.uint8), np.zeros((3, 4), np.uint8))
    with pytest.raises(InputError):
        hamming_distances(np.zeros((2, 6), np.int64), np.zeros((3, 6), np.int64))
    with pytest.raises(InputError):
        hamming_distances(np.zeros((2, 6), np.uint8), np.zeros((3, 6), np.uint8), chunk_size=0)


@pytest.mark.parametrize("bits", [0, 4, 12, 50, 136, 256])
def test_bad_bit_lengths_are_rejected(bits: int) -> None:
    with pytest.raises(InputError):
        validate_bits(bits)
    with pytest.raises(InputError):
        pack_codes(np.zeros((2, bits), dtype=np.uint8))


def test_unpack_rejects_a_bit_count_that_does_not_match() -> None:
    with pytest.raises(InputError):
        unpack_codes(np.zeros((2, 6), dtype=np.uint8), bits=32)
    with pytest.raises(InputError):
        unpack_codes(np.zeros((2, 17), dtype=np.uint8))


def test_pack_rejects_non_binary_values_and_wrong_rank() -> None:
    with pytest.raises(InputError):
        pack_codes(np.full((1, 8), 2, dtype=np.uint8))
    with pytest.raises(InputError):
        pack_codes(np.full((1, 8), 0.5))
    with pytest.raises(InputError):
        pack_codes(np.zeros(8, dtype=np.uint8))


def test_fragile_fraction_by_hand() -> None:
    h = np.array([[0.005, -0.009, 0.5, -0.01], [0.0, 0.99, -0.3, 0.02]])
    assert fragile_fraction(h) == pytest.approx(3 / 8)
    assert fragile_fraction(h, eps=0.6) == pytest.approx(7 / 8)
    with pytest.raises(InputError):
        fragile_fraction(h, eps=0.0)


def test_distinct_codes() -> None:
    packed = np.array([[1, 2], [1, 2], [3, 4], [1, 3], [3, 4]], dtype=np.uint8)
    assert distinct_codes(packed) == 3
    assert distinct_codes(packed[:0]) == 0
