from __future__ import annotations

import pickle
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dnhcli.data.dataset import PreparedDataset
from dnhcli.data.images import count_inputs, iter_files, iter_split, normalize
from dnhcli.errors import InputError


def huge_png_header(width: int, height: int) -> bytes:
    """A PNG that declares width x height pixels and holds none (a decompression bomb's head)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    out = b"\x89PNG\r\n\x1a\n"
    for kind, data in ((b"IHDR", ihdr), (b"IDAT", zlib.compress(b"\x00" * 16)), (b"IEND", b"")):
        out += struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    return out


@pytest.mark.parametrize("shape,count", [((28, 28), 1), ((28, 28, 1), 1), ((28, 28, 3), 1),
                                         ((5, 28, 28), 5), ((5, 28, 28, 1), 5), ((5, 28, 28, 3), 5)])
def test_normalize_accepts_single_images_and_stacks(shape: tuple[int, ...], count: int) -> None:
    out = normalize(np.full(shape, 200, np.uint8), "x")
    assert out.shape == (count, 28, 28) and out.dtype == np.uint8
    assert (out == 200).all()  # grey stays grey through BT.601 (weights sum to 1)


def test_scaling_matches_training() -> None:
    floats = np.linspace(0, 1, 784, dtype=np.float32).reshape(28, 28)
    assert np.array_equal(normalize(floats, "f")[0], np.rint(floats * 255).astype(np.uint8))
    ints = np.arange(784).reshape(28, 28) % 256
    assert np.array_equal(normalize(ints, "i")[0], ints.astype(np.uint8))


@pytest.mark.parametrize("array,message", [
    (np.zeros((4, 4), np.uint8), "too small"),
    (np.zeros((1, 500), np.uint8), "too small"),
    (np.zeros((28, 28, 2), np.uint8), "too small"),  # a stack of 28 strips 28x2
    (np.zeros((2, 3, 28, 28), np.uint8), "not a picture"),
    (np.zeros((0, 28, 28), np.uint8), "no image"),
    (np.full((28, 28), np.nan, np.float32), "NaN"),
    (np.full((28, 28), np.inf, np.float64), "NaN or infinite"),
    (np.full((28, 28), 2.0, np.float32), "within \\[0, 1\\]"),
    (np.full((28, 28), 300, np.int32), "within 0..255"),
    (np.full((40, 40), 300, np.int32), "within 0..255"),
    (np.full((28, 28), -1, np.int16), "within 0..255"),
    (np.zeros((28, 28), np.complex64), "unsupported pixel type"),
    (np.zeros((28, 28), bool), "unsupported pixel type"),
])
def test_normalize_rejects_bad_arrays(array: np.ndarray, message: str) -> None:
    with pytest.raises(InputError, match=message):
        normalize(array, "bad.npy")


def test_files_folders_and_pngs_stream_in_chunks(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    stack = rng.integers(0, 256, (7, 28, 28), dtype=np.uint8)
    np.save(tmp_path / "b_stack.npy", stack)
    np.save(tmp_path / "a_one.npy", stack[0])
    Image.fromarray(stack[1]).save(tmp_path / "c.png")
    (tmp_path / "notes.txt").write_text("ignored")
    chunks = list(iter_files([tmp_path], chunk=3))
    assert [len(c.images) for c in chunks] == [3, 3, 3]
    images = np.concatenate([c.images for c in chunks])
    assert np.array_equal(images, np.concatenate([stack[:1], stack, stack[1:2]]))
    sources = [m["source"] for c in chunks for m in c.metadata]
    assert sources[0].endswith("a_one.npy") and sources[1].endswith("b_stack.npy[0]")
    assert sources[-1].endswith("c.png")
    assert count_inputs([tmp_path]) == 9


def test_hostile_and_broken_files_are_refused(tmp_path: Path) -> None:
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with open(tmp_path / "pickle.npy", "wb") as handle:
        pickle.dump({"x": 1}, handle)
    np.save(tmp_path / "ok.npy", np.zeros((4, 28, 28), np.uint8))
    (tmp_path / "truncated.npy").write_bytes((tmp_path / "ok.npy").read_bytes()[:200])
    (tmp_path / "fake.png").write_bytes(b"not a png")
    (tmp_path / "bomb.png").write_bytes(huge_png_header(100_000, 100_000))
    for name, message in (("objects.npy", "Python objects"), ("pickle.npy", "Python objects"),
                          ("truncated.npy", "not a readable"), ("fake.png", "not a readable"),
                          ("bomb.png", "than dnh reads"), ("missing.npy", "not found")):
        with pytest.raises(InputError, match=message):
            list(iter_files([tmp_path / name]))
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="holds no"):
        list(iter_files([tmp_path / "empty"]))


def test_dataset_split_keeps_labels(synthetic_dataset: Path) -> None:
    ds = PreparedDataset.open(synthetic_dataset)
    chunks = list(iter_split(ds, "query", chunk=10))
    meta = [m for c in chunks for m in c.metadata]
    assert len(meta) == len(ds.split("query"))
    first = meta[0]
    assert first["split"] == "query" and first["index"] == 0
    assert first["class"] == f"{first['organ']}_{first['disease']}"
    assert np.array_equal(chunks[0].images, np.asarray(ds.split("query").images[:10]))


@pytest.mark.parametrize("chunk", [1, 3, 4, 7, 50])
def test_chunks_cross_files_in_order_and_exactly(tmp_path: Path, chunk: int) -> None:
    rng = np.random.default_rng(chunk)
    stacks = [rng.integers(0, 256, (n, 28, 28), dtype=np.uint8) for n in (5, 1, 9, 2)]
    for i, stack in enumerate(stacks):
        np.save(tmp_path / f"{i}.npy", stack)
    np.save(tmp_path / "4.npy", stacks[0][0])  # a single image between stacks
    chunks = list(iter_files([tmp_path], chunk))
    assert [len(c.images) for c in chunks[:-1]] == [chunk] * (len(chunks) - 1)
    assert 1 <= len(chunks[-1].images) <= chunk
    want = np.concatenate([*stacks, stacks[0][:1]])
    assert np.array_equal(np.concatenate([c.images for c in chunks]), want)
    sources = [m["source"] for c in chunks for m in c.metadata]
    assert len(sources) == len(want) and sources[-1].endswith("4.npy") and sources[5].endswith("1.npy[0]")
