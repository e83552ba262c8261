"""Hierarchical hash centres and the centre loss (the "centres" objective).

Every class (organ, disease) gets a target code c in {-1, +1}^K made of two blocks: an organ
block, shared by all classes of an organ, and a disease block, one per class. Each block's rows
come from Sylvester-Hadamard matrices, so two different rows of a block differ in exactly half
of its bits. A block whose width is not a power of two concatenates the rows of one Hadamard
matrix per power of two in its width (48 = 32 + 16), as CSQ does with random centres instead.
Row 0 (all ones) is skipped; negated rows follow the plain ones. Where a block has fewer rows
than it needs (short codes, many classes), the rest are seeded random rows, distinct from all
before them.

For an organ whose diseases are ordered grades (RetinaMNIST's 0-4, an "ordinal-regression"
task), `ordinal_organs` gives its classes graded disease rows instead: grade 0 keeps its
Hadamard row and each next grade flips the next `step` bits of it, so grades g and g' differ
in |g - g'| * step bits, step = width // (grades - 1) (48 bits, 5 grades: 8 bits a grade).

The loss pulls (h + 1) / 2 toward (c + 1) / 2 by binary cross-entropy, averaged over bits and
images (CSQ, Yuan et al., CVPR 2020; the hierarchy follows the organ -> disease relevance of
the evaluation).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from dnhcli.errors import InputError
from dnhcli.index.codes import validate_bits

_EPS = 1e-6


def hadamard(n: int) -> np.ndarray:
    """The n x n Sylvester-Hadamard matrix of +-1 (n a power of two)."""
    if n < 1 or n & (n - 1):
        raise ValueError(f"Hadamard size must be a power of two, got {n}")
    h = np.ones((1, 1), np.int8)
    while len(h) < n:
        h = np.block([[h, h], [h, -h]])
    return h


def _rows(width: int) -> np.ndarray:
    """Candidate rows of a block `width` wide: per power of two in the width, Hadamard rows
    1.. then negated rows 0.., concatenated across the parts (row r of each part)."""
    parts = [1 << b for b in range(width.bit_length()) if width >> b & 1][::-1]
    count = 2 * parts[0] - 1
    blocks = []
    for p in parts:
        h = hadamard(p)
        rows = np.concatenate([h[1:], -h])
        blocks.append(rows[np.arange(count) % len(rows)])
    return np.concatenate(blocks, axis=1)


def _block(width: int, n: int, seed: int) -> np.ndarray:
    """n distinct rows of +-1, `width` wide: Hadamard rows first, then seeded random ones."""
    rows = [tuple(r) for r in _rows(width)]
    chosen: list[tuple[int, ...]] = []
    for row in rows:
        if len(chosen) == n:
            break
        if row not in chosen:
            chosen.append(row)
    rng = np.random.default_rng(seed)
    while len(chosen) < n:
        if len(chosen) >= 2 ** width:
            raise InputError(f"{n} classes need more distinct codes than {width} bits hold")
        row = tuple(int(v) for v in rng.choice(np.array([-1, 1]), width))
        if row not in chosen:
            chosen.append(row)
    return np.array(chosen, np.int8)


def organ_bits(bits: int, organs: int) -> int:
    """Width of the organ block: a power of two, at least a quarter of the code and enough for
    `organs` distinct rows (48 bits: 16 for organs, 32 for diseases)."""
    width = 1
    while width < bits // 4 or 2 * width - 1 < organs:
        width *= 2
    if width >= bits:
        raise InputError(f"{bits} bits are too few for {organs} organs and their diseases")
    return width


def _graded(row: np.ndarray, grades: int) -> np.ndarray:
    """`grades` rows from `row`: grade g flips the first g * step bits (see the module doc)."""
    width = len(row)
    if grades - 1 > width:
        raise InputError(f"{grades} ordered grades need more than {width} disease bits")
    step = width // max(grades - 1, 1)
    out = np.repeat(row[None], grades, axis=0)
    for g in range(1, grades):
        out[g, :g * step] *= -1
    return out


def hash_centres(class_organs: Sequence[int], bits: int, seed: int = 0,
                 ordinal_organs: Sequence[int] = ()) -> np.ndarray:
    """Target codes (C, K) in {-1, +1}: class c's organ block is its organ's row, its disease
    block its own row (graded rows for the classes of `ordinal_organs`, in class order).
    `class_organs[c]` is the organ index of class c."""
    validate_bits(bits)
    organ_of = np.asarray(class_organs, np.int64)
    if organ_of.ndim != 1 or len(organ_of) == 0 or organ_of.min() < 0:
        raise InputError("hash centres need the organ index (>= 0) of every class")
    organs = int(organ_of.max()) + 1
    width = organ_bits(bits, organs)
    organ_rows = _block(width, organs, seed)
    disease_rows = _block(bits - width, len(organ_of), seed + 1)
    for organ in set(ordinal_organs):
        members = np.flatnonzero(organ_of == organ)
        if len(members) > 1:
            disease_rows[members] = _graded(disease_rows[members[0]], len(members))
    return np.concatenate([organ_rows[organ_of], disease_rows], axis=1)


def centre_loss(h: torch.Tensor, centres: torch.Tensor,
                weights: torch.Tensor | None = None) -> torch.Tensor:
    """mean BCE((h + 1) / 2, (c + 1) / 2) over images and bits; `centres` holds each image's
    target code (B, K) in {-1, +1}. With `weights` (B,), the mean over images is weighted:
    sum_b w_b BCE_b / sum_b w_b."""
    if h.shape != centres.shape:
        raise InputError(f"codes {tuple(h.shape)} and centres {tuple(centres.shape)} differ in shape")
    p = ((h + 1) / 2).clamp(_EPS, 1 - _EPS)
    if weights is None:
        return F.binary_cross_entropy(p, (centres + 1) / 2)
    per_image = F.binary_cross_entropy(p, (centres + 1) / 2, reduction="none").mean(dim=1)
    return (weights * per_image).sum() / weights.sum()
