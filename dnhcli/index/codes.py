"""Binary hash codes: sign, pack, unpack and Hamming distance (numpy in, numpy out).

Conventions, fixed here and relied on by the database, export and evaluation:

- Bit rule: bit = 1 where h >= 0, else 0. A component that is exactly 0 maps to 1
  (this is `h >= 0`, not `torch.sign`, which would give 0 for 0). NaN is rejected.
- Packing: a code of K bits (K a multiple of 8, 8..128) is stored as K/8 uint8
  bytes, big-endian within each byte, i.e. `np.packbits(bits, axis=1,
  bitorder="big")`: component j of the code is bit (7 - j % 8) of byte j // 8,
  so component 0 is the most significant bit of byte 0.
"""

from __future__ import annotations

import numpy as np

from dnhcli.errors import InputError

MIN_BITS = 8
MAX_BITS = 128
# Upper bound for the XOR intermediate of one query chunk in hamming_distances.
_CHUNK_BYTES = 32 * 1024 * 1024


def validate_bits(bits: int) -> int:
    """Return `bits` if it is a valid code length (a multiple of 8 in 8..128); else InputError."""
    if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)):
        raise InputError(f"bit length must be an integer, got {bits!r}")
    if bits % 8 != 0 or not MIN_BITS <= bits <= MAX_BITS:
        raise InputError(
            f"bit length {bits} is not supported",
            hint=f"use a multiple of 8 between {MIN_BITS} and {MAX_BITS}, e.g. 16, 32, 48 or 64",
        )
    return int(bits)


def _as_array(array: np.ndarray, what: str) -> np.ndarray:
    try:
        return np.asarray(array)
    except (TypeError, ValueError) as exc:  # e.g. ragged nested lists
        raise InputError(f"{what} must be a rectangular array of numbers ({exc})") from None


def _as_2d(array: np.ndarray, what: str) -> np.ndarray:
    array = _as_array(array, what)
    if array.ndim != 2:
        raise InputError(f"{what} must be a 2-D array (N, K), got shape {array.shape}")
    return array


def sign_bits(h: np.ndarray) -> np.ndarray:
    """Binarise continuous codes: uint8 array of h's shape, 1 where h >= 0 (so h == 0 gives 1)."""
    h = _as_array(h, "continuous codes")
    if h.dtype.kind not in "iuf":  # not bool, complex, timedelta (an integer to numpy) or object
        raise InputError(f"continuous codes must be real numbers, got dtype {h.dtype}")
    if not np.all(np.isfinite(h)):
        raise InputError(
            "continuous codes contain NaN or infinite values",
            hint="the model produced invalid outputs; check the checkpoint and the input scaling",
        )
    return (h >= 0).astype(np.uint8)


def pack_codes(bits: np.ndarray) -> np.ndarray:
    """Pack (N, K) bits (bool or 0/1 integers) into (N, K/8) uint8, big-endian within each byte."""
    bits = _as_2d(bits, "bits")
    validate_bits(bits.shape[1])
    if bits.dtype != np.bool_:
        if not np.issubdtype(bits.dtype, np.integer):
            raise InputError(f"bits must be bool or 0/1 integers, got dtype {bits.dtype}")
        if bits.size and (bits.min() < 0 or bits.max() > 1):
            raise InputError("bits must only hold 0 and 1", hint="binarise with sign_bits first")
    return np.packbits(bits.astype(bool), axis=1, bitorder="big")


def unpack_codes(packed: np.ndarray, bits: int | None = None) -> np.ndarray:
    """Unpack (N, K/8) uint8 codes into (N, K) uint8 bits; `bits`, if given, must be 8 * K/8."""
    packed = _as_2d(packed, "packed codes")
    if packed.dtype != np.uint8:
        raise InputError(f"packed codes must be uint8, got dtype {packed.dtype}")
    stored = packed.shape[1] * 8
    validate_bits(stored)
    if bits is not None and validate_bits(bits) != stored:
        raise InputError(f"packed codes hold {stored} bits, but {bits} bits were requested")
    return np.unpackbits(packed, axis=1, bitorder="big")


def codes_from_continuous(h: np.ndarray) -> np.ndarray:
    """Continuous codes (N, K) -> packed uint8 codes (N, K/8), bit = 1 where h >= 0."""
    return pack_codes(sign_bits(_as_2d(h, "continuous codes")))


def _as_words(packed: np.ndarray) -> np.ndarray:
    """View (N, B) bytes as (N, ceil(B/8)) zero-padded uint64 words; popcount ignores endianness."""
    n, width = packed.shape
    words = -(-width // 8)
    padded = np.zeros((n, words * 8), dtype=np.uint8)
    padded[:, :width] = packed
    return padded.view(np.uint64)


def hamming_distances(
    queries: np.ndarray, gallery: np.ndarray, chunk_size: int | None = None
) -> np.ndarray:
    """Hamming distances (Q, N) int32 between packed query codes (Q, B) and gallery codes (N, B).

    Queries are processed `chunk_size` rows at a time; by default the chunk is
    chosen so that one chunk's XOR intermediate stays under 32 MiB.
    """
    queries = _as_2d(queries, "query codes")
    gallery = _as_2d(gallery, "gallery codes")
    for name, array in (("query", queries), ("gallery", gallery)):
        if array.dtype != np.uint8:
            raise InputError(f"{name} codes must be packed uint8, got dtype {array.dtype}")
    if queries.shape[1] != gallery.shape[1]:
        raise InputError(
            f"query codes have {queries.shape[1] * 8} bits but gallery codes have "
            f"{gallery.shape[1] * 8}",
            hint="hash the queries with the model that built the gallery",
        )
    validate_bits(queries.shape[1] * 8)
    if chunk_size is not None and (isinstance(chunk_size, bool) or not isinstance(
            chunk_size, (int, np.integer)) or chunk_size < 1):
        raise InputError(f"chunk size must be a positive integer or None, got {chunk_size!r}")

    q_words, g_words = _as_words(queries), _as_words(gallery)
    out = np.empty((len(queries), len(gallery)), dtype=np.int32)
    if out.size == 0:
        return out
    if chunk_size is None:
        row_bytes = max(1, g_words.shape[0] * g_words.shape[1] * 8)
        chunk_size = max(1, _CHUNK_BYTES // row_bytes)
    for start in range(0, len(queries), chunk_size):
        stop = start + chunk_size
        xor = np.bitwise_xor(q_words[start:stop, None, :], g_words[None, :, :])
        out[start:stop] = np.bitwise_count(xor).sum(axis=2, dtype=np.int32)
    return out


def fragile_fraction(h: np.ndarray, eps: float = 0.01) -> float:
    """Share of code components with |h| < eps: bits that may flip under FP16 or another runtime."""
    h = np.asarray(h)
    if h.size == 0:
        raise InputError("no continuous codes given")
    if not eps > 0:
        raise InputError(f"eps must be positive, got {eps}")
    return float(np.mean(np.abs(h) < eps))


def distinct_codes(packed: np.ndarray) -> int:
    """Number of distinct codes (rows) among packed codes (N, B)."""
    packed = _as_2d(packed, "packed codes")
    if len(packed) == 0:
        return 0
    return int(np.unique(packed, axis=0).shape[0])


def mean_tie_size(packed: np.ndarray) -> float:
    """Mean over the rows of how many rows (itself included) hold exactly its code: sum of the
    squared counts of the distinct codes / N (1.0 when all codes differ, N when all are equal)."""
    packed = np.asarray(packed)
    if len(packed) == 0:
        return 0.0
    _, counts = np.unique(packed, axis=0, return_counts=True)
    return float((counts.astype(np.float64) ** 2).sum() / len(packed))
