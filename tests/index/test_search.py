from __future__ import annotations

import numba
import numpy as np
import pytest

from dnhcli.errors import InputError
from dnhcli.index import search
from dnhcli.index.codes import hamming_distances, pack_codes
from dnhcli.index.search import range_search, set_threads, topk

BITS = (8, 16, 48, 64, 128)
# numba: the kernels; numpy: the small-search path of a process that has not loaded them
ENGINES = ("numba", "numpy")


def _clustered(n: int, bits: int, seed: int) -> np.ndarray:
    """Codes near a few centres: many equal distances, hence many ties."""
    rng = np.random.default_rng(seed)
    centres = rng.integers(0, 2, (4, bits))
    flips = rng.random((n, bits)) < 0.03
    return pack_codes(centres[rng.integers(0, 4, n)] ^ flips)


def _descending(bits: int, per_level: int) -> tuple[np.ndarray, np.ndarray]:
    """A query of zeros and codes at distances K, K-1, ..., 0 in that id order: every code beats
    the best so far, which exercises the candidate buffer's compaction."""
    rows = [[1] * d + [0] * (bits - d) for d in range(bits, -1, -1) for _ in range(per_level)]
    return pack_codes(np.zeros((1, bits), np.uint8)), pack_codes(np.array(rows, np.uint8))


def _check_topk(q: np.ndarray, g: np.ndarray, k: int, threads: int | None = None,
                engine: search.Engine = "numba") -> None:
    dist, ids = topk(q, g, k, threads=threads, engine=engine)
    full = hamming_distances(q, g)
    order = np.argsort(full, axis=1, kind="stable")[:, :k]
    assert dist.dtype == np.int32 and ids.dtype == np.int64
    assert ids.shape == (len(q), min(k, len(g)))
    np.testing.assert_array_equal(ids, order)
    np.testing.assert_array_equal(dist, np.take_along_axis(full, order, axis=1))


def _check_range(q: np.ndarray, g: np.ndarray, radius: int, engine: search.Engine = "numba") -> None:
    lims, dist, ids = range_search(q, g, radius, engine=engine)
    full = hamming_distances(q, g)
    assert lims.dtype == np.int64 and dist.dtype == np.int32 and ids.dtype == np.int64
    assert lims.shape == (len(q) + 1,) and lims[0] == 0 and lims[-1] == len(ids) == len(dist)
    for row in range(len(q)):
        order = np.argsort(full[row], kind="stable")
        want = order[full[row][order] <= radius]
        np.testing.assert_array_equal(ids[lims[row]:lims[row + 1]], want)
        np.testing.assert_array_equal(dist[lims[row]:lims[row + 1]], full[row][want])


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("bits", BITS)
def test_topk_equals_the_stable_rule_with_many_ties(bits: int, engine: search.Engine) -> None:
    g = _clustered(3001, bits, seed=bits)
    q = np.concatenate([_clustered(7, bits, seed=bits + 1), g[:2]])
    for k in (1, 10, len(g) - 1, len(g), len(g) + 5):
        _check_topk(q, g, k, engine=engine)


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("bits", BITS)
def test_topk_all_equal_and_descending_codes(bits: int, engine: search.Engine) -> None:
    g = np.repeat(_clustered(1, bits, seed=3), 500, axis=0)
    for k in (1, 10, 499, 500, 505):
        _check_topk(np.concatenate([g[:1], ~g[:1]]), g, k, engine=engine)
    q, g = _descending(bits, per_level=12)
    for k in (1, 10, 300, len(g)):
        _check_topk(q, g, k, engine=engine)


@pytest.mark.parametrize("threads", [1, pytest.param(2, marks=pytest.mark.skipif(
    numba.config.NUMBA_NUM_THREADS < 2, reason="one CPU core: no second thread"))])
def test_topk_split_between_threads_and_database_ranges(threads: int) -> None:
    g = _clustered(140_001, 48, seed=5)  # long enough to be split into several ranges
    q = np.concatenate([_clustered(2, 48, seed=6), g[-1:]])
    for k in (1, 10, 100, 1000):
        _check_topk(q, g, k, threads=threads)
    _check_topk(np.repeat(q, 10, axis=0), g, 10, threads=threads)


@pytest.mark.parametrize("engine", ENGINES)
def test_empty_inputs(engine: search.Engine) -> None:
    g = _clustered(50, 48, seed=1)
    dist, ids = topk(g[:0], g, 5, engine=engine)
    assert dist.shape == ids.shape == (0, 5)
    dist, ids = topk(g[:3], g[:0], 5, engine=engine)
    assert dist.shape == ids.shape == (3, 0) and dist.dtype == np.int32 and ids.dtype == np.int64
    lims, dist, ids = range_search(g[:3], g[:0], 2, engine=engine)
    assert lims.tolist() == [0, 0, 0, 0] and len(dist) == len(ids) == 0
    lims, dist, ids = range_search(g[:0], g, 2, engine=engine)
    assert lims.tolist() == [0] and len(ids) == 0
    lims, dist, ids = range_search(g[:3], g[3:10] ^ 0xFF, 0, engine=engine)  # nothing in range
    assert lims.tolist() == [0, 0, 0, 0] and dist.dtype == np.int32 and ids.dtype == np.int64


@pytest.mark.parametrize("engine", ENGINES)
def test_memmap_strided_and_unaligned_inputs(tmp_path, engine: search.Engine) -> None:
    g = _clustered(5003, 48, seed=2)
    path = tmp_path / "codes.bin"
    with path.open("wb") as f:
        f.write(b"x")  # an odd offset: rows are not aligned to anything
        f.write(g.tobytes())
    mm = np.memmap(path, dtype=np.uint8, mode="r", offset=1, shape=g.shape)
    q = g[10:14]
    for k in (1, 10, 5003):
        np.testing.assert_array_equal(topk(q, mm, k, engine=engine)[1], topk(q, g, k, engine=engine)[1])
    _check_topk(q, mm, 10, engine=engine)
    _check_topk(q[::2], g[::3], 10, engine=engine)  # non-contiguous arrays are copied, not misread
    _check_range(q, mm, 3, engine=engine)


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("bits", BITS)
def test_range_search_equals_brute_force(bits: int, engine: search.Engine) -> None:
    g = _clustered(2500, bits, seed=bits + 2)
    q = np.concatenate([g[:3], _clustered(3, bits, seed=bits + 3)])
    for radius in (0, 2, bits, bits + 10):
        _check_range(q, g, radius, engine=engine)


def test_numpy_blocks_of_queries_match_the_kernels(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("dnhcli.index.search_numpy._BLOCK_BYTES", 6 * 700)  # a few queries a block
    g = _clustered(700, 48, seed=9)
    q = np.concatenate([g[:20], _clustered(13, 48, seed=10)])
    for k in (1, 5, 700):
        np.testing.assert_array_equal(topk(q, g, k, engine="numpy")[1], topk(q, g, k, engine="numba")[1])
    _check_range(q, g, 4, engine="numpy")


def test_auto_engine_uses_numpy_only_for_small_work_before_the_kernels_load(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(search, "_numpy_seconds", 0.0)
    calls: list[str] = []
    real = search.topk_numpy
    monkeypatch.setattr(search, "topk_numpy", lambda *a: calls.append("numpy") or real(*a))
    g = _clustered(100, 16, seed=0)
    monkeypatch.setattr(search, "_kernels_loaded", False)
    _check_topk(g[:3], g, 5, engine="auto")
    assert calls == ["numpy"]
    monkeypatch.setattr(search, "SMALL_WORK", 299)  # 3 x 100 distances is now large work
    _check_topk(g[:3], g, 5, engine="auto")
    assert calls == ["numpy"] and search._kernels_loaded
    monkeypatch.setattr(search, "SMALL_WORK", 1 << 21)
    _check_topk(g[:3], g, 5, engine="auto")  # loaded kernels serve every later search
    assert calls == ["numpy"]
    monkeypatch.setattr(search, "_kernels_loaded", False)
    _check_topk(g[:65], g, 5, engine="auto")  # more queries than numpy's loop is meant for
    assert calls == ["numpy"]
    monkeypatch.setattr(search, "_kernels_loaded", False)
    monkeypatch.setattr(search, "_numpy_seconds", search.NUMPY_BUDGET)  # numpy has cost enough
    _check_topk(g[:3], g, 5, engine="auto")
    assert calls == ["numpy"] and search._kernels_loaded


def test_range_search_split_between_threads() -> None:
    g = _clustered(140_001, 64, seed=4)
    _check_range(np.concatenate([g[:1], g[-1:]]), g, 2)
    _check_range(g[:9], g, 1)


def test_input_errors() -> None:
    g = _clustered(20, 48, seed=0)
    cases = [
        lambda: topk(g.astype(np.int16), g, 1),  # dtype
        lambda: topk(g, g.astype(np.float32), 1),
        lambda: topk(g[0], g, 1),  # 1-D
        lambda: topk(g, g[None], 1),  # 3-D
        lambda: topk(g[:, :4], g, 1),  # widths differ
        lambda: topk(np.zeros((2, 17), np.uint8), np.zeros((5, 17), np.uint8), 1),  # 136 bits
        lambda: topk(np.zeros((2, 0), np.uint8), np.zeros((5, 0), np.uint8), 1),  # 0 bits
        lambda: topk(g, g, 0),
        lambda: topk(g, g, 2.5),  # type: ignore[arg-type]
        lambda: topk(g.tolist(), g, 1),  # type: ignore[arg-type]
        lambda: range_search(g, g, -1),
        lambda: topk(g, g, 1, threads=0),
        lambda: set_threads(10_000),
        lambda: topk(g, g, 1, engine="gpu"),  # type: ignore[arg-type]
        lambda: topk(g, g, 1, threads=0, engine="numpy"),
        lambda: range_search(g, g, -1, engine="numpy"),
    ]
    for case in cases:
        with pytest.raises(InputError):
            case()


def test_set_threads_round_trip() -> None:
    assert set_threads(1) == 1
    g = _clustered(300, 16, seed=0)
    _check_topk(g[:5], g, 7)
    assert set_threads(None) >= 1
