"""Hierarchical hash centres and the centre loss."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from dnhcli.errors import InputError
from dnhcli.models.centres import centre_loss, hadamard, hash_centres, organ_bits

CLASS_ORGANS = [0, 0, 1, 1, 1, 2, 2, 2, 2]  # 3 organs, 9 classes (like Breast/Pneumonia/Retina)


def test_hadamard_rows_are_orthogonal() -> None:
    for n in (1, 2, 4, 16, 32):
        h = hadamard(n).astype(np.int64)
        assert (h @ h.T == n * np.eye(n, dtype=np.int64)).all()
    with pytest.raises(ValueError):
        hadamard(12)


@pytest.mark.parametrize("bits", [8, 16, 24, 32, 48, 64, 128])
def test_centres_are_distinct_and_share_the_organ_block(bits: int) -> None:
    centres = hash_centres(CLASS_ORGANS, bits)
    assert centres.shape == (9, bits) and set(np.unique(centres)) <= {-1, 1}
    assert len({tuple(row) for row in centres}) == 9
    width = organ_bits(bits, 3)
    organs = np.array(CLASS_ORGANS)
    for a in range(9):
        for b in range(9):
            same = (centres[a, :width] == centres[b, :width]).all()
            assert same == (organs[a] == organs[b])  # organ block: shared within, differs across
    assert np.array_equal(hash_centres(CLASS_ORGANS, bits), centres)  # deterministic


def test_48_bit_centres_are_hadamard_blocks() -> None:
    centres = hash_centres(CLASS_ORGANS, 48)
    assert organ_bits(48, 3) == 16
    distance = (centres[:, None, :] != centres[None, :, :]).sum(axis=2)
    organs = np.array(CLASS_ORGANS)
    same_organ = organs[:, None] == organs[None, :]
    off = ~np.eye(9, dtype=bool)
    assert set(distance[off & same_organ]) == {16}   # half of the 32-bit disease block
    assert set(distance[off & ~same_organ]) == {24}  # plus half of the 16-bit organ block


def test_many_classes_in_few_bits_fall_back_to_distinct_random_rows() -> None:
    organs = [c // 14 for c in range(28)]  # 2 organs of 14 classes each, in 8 bits
    centres = hash_centres(organs, 8)
    assert len({tuple(row) for row in centres}) == 28
    with pytest.raises(InputError):
        hash_centres([], 48)


def test_centre_loss_by_hand() -> None:
    h = torch.tensor([[0.6, -0.2], [0.0, 1.0]])
    c = torch.tensor([[1.0, 1.0], [-1.0, 1.0]])
    # p = (h + 1) / 2 = [[0.8, 0.4], [0.5, 1 - eps]], targets [[1, 1], [0, 1]]
    expected = (-math.log(0.8) - math.log(0.4) - math.log(0.5) - math.log(1 - 1e-6)) / 4
    assert centre_loss(h, c).item() == pytest.approx(expected, rel=1e-5)
    assert centre_loss(c * (1 - 1e-7), c).item() < 1e-5  # at the centre: about 0
    with pytest.raises(InputError):
        centre_loss(h, c[:1])


@pytest.mark.parametrize("bits", [16, 48, 64])
def test_ordinal_centres_space_the_grades_evenly(bits: int) -> None:
    centres = hash_centres(CLASS_ORGANS, bits, ordinal_organs=[2])
    plain = hash_centres(CLASS_ORGANS, bits)
    width = bits - organ_bits(bits, 3)
    step = width // 3  # organ 2 has 4 grades
    grades = centres[5:]
    distance = (grades[:, None] != grades[None]).sum(-1)
    expected = step * np.abs(np.arange(4)[:, None] - np.arange(4)[None])
    assert (distance == expected).all()
    assert (centres[:5] == plain[:5]).all()  # the other organs keep their Hadamard rows
    assert (centres[5:, :bits - width] == plain[5:, :bits - width]).all()  # and the organ block
    assert len({tuple(row) for row in centres}) == 9


def test_weighted_centre_loss_by_hand() -> None:
    h = torch.tensor([[0.0, 0.0], [0.6, -0.6]])
    c = torch.tensor([[1.0, 1.0], [1.0, 1.0]])
    per_image = [math.log(2), -(math.log(0.8) + math.log(0.2)) / 2]
    w = torch.tensor([3.0, 1.0])
    expected = (3 * per_image[0] + per_image[1]) / 4
    assert centre_loss(h, c, w).item() == pytest.approx(expected, rel=1e-5)
    assert centre_loss(h, c, torch.ones(2)).item() == pytest.approx(centre_loss(h, c).item(), rel=1e-6)
