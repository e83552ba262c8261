"""The alterations of instance retrieval against hand-made images."""

from __future__ import annotations

import numpy as np
import pytest

from dnhcli.errors import InputError
from dnhcli.evaluation.alterations import ALTERATION_NAMES, alter, rescale, rotate, shift


def _batch(n: int = 6, side: int = 28, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, side, side), dtype=np.uint8)


def test_names_shapes_and_dtype() -> None:
    assert ALTERATION_NAMES == ("exact", "jpeg", "intensity+10", "intensity-10", "contrast", "shift1",
                                "shift2", "rotate5", "rescale0.9", "rescale1.1", "noise")
    images = _batch()
    for name in ALTERATION_NAMES:
        out = alter(images, name)
        assert out.dtype == np.uint8 and out.shape == images.shape, name
        assert out is not images and not np.shares_memory(out, images), name
    assert (alter(images, "exact") == images).all()


def test_deterministic_by_seed() -> None:
    images = _batch()
    for name in ALTERATION_NAMES:
        assert (alter(images, name, seed=3) == alter(images, name, seed=3)).all(), name
    for name in ("noise", "shift1", "rotate5"):  # the random ones follow the seed
        assert any((alter(images, name, seed=s) != alter(images, name, seed=3)).any() for s in range(4, 8))
    # an image's alteration does not depend on which other alterations ran before
    alter(images, "noise", seed=1)
    assert (alter(images, "shift2", seed=1) == alter(images.copy(), "shift2", seed=1)).all()


def test_shift_moves_a_pixel_and_replicates_edges() -> None:
    image = np.zeros((1, 9, 9), np.uint8)
    image[0, 4, 4] = 200
    moved = shift(image, 1, -2)
    assert moved[0, 5, 2] == 200 and moved.sum() == 200
    edge = np.zeros((1, 5, 5), np.uint8)
    edge[0, :, 0] = 50  # left column
    assert (shift(edge, 0, 2)[0, :, :3] == 50).all()  # the left edge repeats into the gap
    for step, name in ((1, "shift1"), (2, "shift2")):
        out = alter(np.repeat(image, 20, axis=0), name, seed=5)
        for one in out:
            y, x = np.argwhere(one == 200)[0]
            assert max(abs(y - 4), abs(x - 4)) == step and one.sum() == 200


def test_intensity_contrast_and_noise() -> None:
    image = np.array([[[100, 250], [0, 20]]], np.uint8)
    assert alter(image, "intensity+10").tolist() == [[[110, 255], [0, 22]]]
    assert alter(image, "intensity-10").tolist() == [[[90, 225], [0, 18]]]
    halves = np.array([[[0, 200], [0, 200]]], np.uint8)  # mean 100
    assert alter(halves, "contrast").tolist() == [[[10, 190], [10, 190]]]
    grey = np.full((4, 28, 28), 128, np.uint8)
    noisy = alter(grey, "noise").astype(np.float64) - 128
    assert abs(noisy.mean()) < 0.3 and 2.7 < noisy.std() < 3.3


def test_jpeg_rotation_and_rescale_are_mild() -> None:
    smooth = np.tile(np.linspace(40, 200, 28, dtype=np.float64), (28, 1))
    images = np.stack([smooth, smooth.T]).round().astype(np.uint8)
    assert np.abs(alter(images, "jpeg").astype(int) - images).mean() < 3
    flat = np.full((2, 28, 28), 90, np.uint8)  # no constant fill enters the corners
    for name in ("rotate5", "rescale0.9", "rescale1.1", "shift2"):
        assert (alter(flat, name) == 90).all(), name
    square = np.zeros((28, 28), np.uint8)
    square[10:18, 10:18] = 255
    assert (rescale(square, 1.1) > 127).sum() > 64 > (rescale(square, 0.9) > 127).sum()
    turned = rotate(square, 5.0)
    assert turned[14, 14] == 255 and 0 < (turned != square).sum() < 40
    assert (rotate(square, 0.0) == square).all()


def test_bad_input() -> None:
    with pytest.raises(InputError, match="unknown alteration"):
        alter(_batch(), "blur")
    with pytest.raises(InputError, match="uint8"):
        alter(_batch().astype(np.float32), "exact")
    with pytest.raises(InputError, match="uint8"):
        alter(_batch()[0], "exact")
