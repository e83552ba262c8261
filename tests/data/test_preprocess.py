"""The one preprocessing rule: bit depth, centre crop, bicubic resize, grey; 28 x 28 untouched."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dnhcli.data.images import iter_files, normalize
from dnhcli.data.preprocess import MIN_SIDE, fit
from dnhcli.errors import InputError


def _read(path: Path, side: int = 28) -> np.ndarray:
    return np.concatenate([c.images for c in iter_files([path], side=side)])


def test_28_pixel_inputs_are_untouched() -> None:
    rng = np.random.default_rng(0)
    grey = rng.integers(0, 256, (28, 28), dtype=np.uint8)
    assert np.array_equal(fit(grey, 28, "g"), grey)
    rgb = rng.integers(0, 256, (28, 28, 3), dtype=np.uint8)
    assert np.array_equal(fit(rgb, 28, "c"), normalize(rgb[None], "c")[0])


def test_the_centre_square_of_the_short_side_is_kept() -> None:
    picture = np.full((40, 100), 255, np.uint8)
    picture[:, 30:70] = 0  # the centre 40 x 40 is black, the bands beside it white
    assert (fit(picture, 28, "wide") == 0).all()
    assert (fit(picture.T, 28, "tall") == 0).all()


def test_downscaling_keeps_a_smooth_picture() -> None:
    small = np.add.outer(np.arange(28), np.arange(28)).astype(np.float64) * 255 / 54
    big = np.kron(small, np.ones((8, 8)))  # the same picture at 224 px
    out = fit(np.rint(big).astype(np.uint8), 28, "big").astype(int)
    assert np.abs(out - np.rint(small)).max() <= 3
    assert fit(np.full((300, 500), 77, np.uint8), 28, "flat").tolist() == [[77] * 28] * 28


def test_the_model_side_comes_from_the_caller() -> None:
    out = fit(np.zeros((100, 100), np.uint8), 64, "x")
    assert out.shape == (64, 64)


@pytest.mark.parametrize("mode,suffix", [("L", ".png"), ("L", ".jpg"), ("L", ".bmp"), ("L", ".tif"),
                                         ("RGB", ".png"), ("RGBA", ".png"), ("P", ".png"),
                                         ("I;16", ".png"), ("I;16", ".tif"), ("RGB", ".tif")])
def test_every_picture_format_reads(mode: str, suffix: str, tmp_path: Path) -> None:
    base = np.random.default_rng(1).integers(0, 256, (60, 90), dtype=np.uint8)
    if mode == "I;16":
        picture = Image.fromarray(base.astype(np.uint16) * 257)
    else:
        picture = Image.fromarray(base).convert(mode)
    path = tmp_path / f"x{suffix}"
    picture.save(path)
    out = _read(path)
    assert out.shape == (1, 28, 28) and out.dtype == np.uint8
    if suffix in (".png", ".bmp", ".tif"):  # lossless: the same grey picture hashes alike
        assert np.abs(out.astype(int) - fit(base, 28, "base").astype(int)).max() <= 1


def test_a_16_bit_copy_of_an_8_bit_picture_hashes_alike(tmp_path: Path) -> None:
    base = np.random.default_rng(2).integers(0, 256, (120, 90), dtype=np.uint8)
    Image.fromarray(base).save(tmp_path / "8.png")
    Image.fromarray(base.astype(np.uint16) * 257).save(tmp_path / "16.png")
    np.save(tmp_path / "16.npy", base.astype(np.uint16) * 257)
    eight = _read(tmp_path / "8.png")
    assert np.array_equal(eight, _read(tmp_path / "16.png"))
    assert np.array_equal(eight, _read(tmp_path / "16.npy"))


def test_npy_of_any_2d_size_and_stacks(tmp_path: Path) -> None:
    np.save(tmp_path / "one.npy", np.zeros((50, 70), np.uint8))
    np.save(tmp_path / "stack.npy", np.zeros((4, 50, 70), np.float32))
    np.save(tmp_path / "rgb.npy", np.zeros((50, 70, 3), np.uint8))
    assert _read(tmp_path / "one.npy").shape == (1, 28, 28)
    assert _read(tmp_path / "stack.npy").shape == (4, 28, 28)
    assert _read(tmp_path / "rgb.npy").shape == (1, 28, 28)


def test_thin_and_empty_pictures_are_refused(tmp_path: Path) -> None:
    Image.fromarray(np.zeros((1, 300), np.uint8)).save(tmp_path / "strip.png")
    with pytest.raises(InputError, match="too small"):
        _read(tmp_path / "strip.png")
    with pytest.raises(InputError, match="too small"):
        fit(np.zeros((MIN_SIDE - 1, 100), np.uint8), 28, "x")
    with pytest.raises(InputError, match="no pixels|no image"):
        normalize(np.zeros((0, 10), np.uint8), "x")
