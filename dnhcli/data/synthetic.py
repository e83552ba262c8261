"""An embedded, procedurally generated dataset in MedMNIST `.npz` form (no files, no network).

Three organ groups whose global layout differs (so the organ is obvious) and whose
diseases are small local changes (so disease-level retrieval is a real test):

- Brain (axial-MRI-like: skull ring, textured tissue, two ventricles, sulci): normal,
  tumor (a bright, often elongated mass, sometimes with a dark rim of oedema), cyst
  (a round, sharp, dark blob).
- Lung (chest-X-ray-like: two dark lung fields with sloping ribs, heart, vessels):
  normal, nodule (a bright spot in a lung), effusion (a fluid level at one lung base).
- Cell (histology-like: scattered or clustered dark nuclei): normal, atypia (one to
  three enlarged, darker, irregular nuclei).

Every image is its own instance, "normal" ones included: the anatomy varies (skull and
lung shape and tilt, ventricle size, rib spacing and slope, nuclei count, size and
layout), each image has its own smooth tissue texture, and each lesion its own position,
size, shape, orientation and contrast; normal anatomy holds look-alikes of the lesions
(sulci, vessels seen end-on, touching nuclei), so the disease is learnable, not trivial.
Images are drawn from a generator seeded by (seed, organ): the same seed always gives
the same bytes, and every image draws its lesions whatever its disease, so one generator
state renders the same anatomy and noise as a normal or a diseased image.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache

import numpy as np
from numpy.typing import ArrayLike

from dnhcli.data.medmnist_source import OFFICIAL_SPLITS, SubsetInfo

SIDE = 28
VERSION = 2
_OFFICIAL_SHARES = (0.7, 0.1, 0.2)
_YY, _XX = np.mgrid[0:SIDE, 0:SIDE].astype(np.float32)

Renderer = Callable[[np.random.Generator, int], np.ndarray]


def _shapes(rows: object) -> np.ndarray:
    """(n, SIDE, SIDE) anti-aliased filled ellipses in [0, 1], one per row of (cy, cx, ry, rx,
    theta); the `ry` axis points along angle `theta` (radians, 0 = down the rows). All
    drawn in one go: a few array operations per image, not per shape, keep generation fast."""
    cy, cx, ry, rx, theta = np.asarray(rows, np.float32).reshape(-1, 5).T[:, :, None, None]
    dy, dx = _YY - cy, _XX - cx
    c, s = np.cos(theta), np.sin(theta)
    along, across = (dy * c + dx * s) / ry, (dx * c - dy * s) / rx
    shape = (1.0 - np.sqrt(along * along + across * across)) * np.minimum(ry, rx) + 0.5
    return np.clip(shape, 0.0, 1.0)


def _blobs(amounts: object, rows: object) -> np.ndarray:
    """One image: the ellipses of `rows` (see `_shapes`) weighted by `amounts` and summed."""
    return np.tensordot(np.asarray(amounts, np.float32), _shapes(rows), axes=1)


@cache
def _upsampler(points: int) -> np.ndarray:
    """(SIDE, points) linear interpolation matrix from a coarse grid to the image."""
    where = np.linspace(0, points - 1, SIDE)
    return np.stack([np.interp(where, np.arange(points), np.eye(points)[k])
                     for k in range(points)], axis=1).astype(np.float32)


def _texture(rng: np.random.Generator, points: int = 6) -> np.ndarray:
    """Smooth random field of about unit spread: the tissue texture that makes each image its own."""
    up = _upsampler(points)
    return up @ rng.normal(0.0, 1.3, (points, points)).astype(np.float32) @ up.T


def _frame(cy: float, cx: float, tilt: float, along: ArrayLike,
           across: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Image position of points given in an organ's own frame, turned by `tilt`."""
    c, s = np.cos(tilt), np.sin(tilt)
    along, across = np.asarray(along), np.asarray(across)
    return cy + along * c - across * s, cx + along * s + across * c


def _finish(rng: np.random.Generator, img: np.ndarray) -> np.ndarray:
    """Global contrast jitter and sensor noise, then uint8."""
    img = img * rng.uniform(0.85, 1.15) + rng.uniform(-12, 12)
    img = img + rng.normal(0.0, rng.uniform(3.0, 7.0), img.shape)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def _brain(rng: np.random.Generator, disease: int) -> np.ndarray:
    cy, cx = SIDE / 2 + rng.uniform(-1.5, 1.5, 2)
    tilt = rng.uniform(-0.3, 0.3)
    ay, ax = rng.uniform(9.5, 12.5), rng.uniform(7.5, 10.5)
    iy, ix = np.array([ay, ax]) - rng.uniform(1.2, 2.2)
    oy, ox = np.array([cy, cx]) + rng.uniform(-0.6, 0.6, 2)  # uneven skull thickness
    outer, inner = _shapes([(oy, ox, ay, ax, tilt), (cy, cx, iy, ix, tilt)])
    img = np.full((SIDE, SIDE), rng.uniform(5, 25), np.float32)
    img += (outer - inner) * rng.uniform(170, 235)
    tissue = rng.uniform(95, 135)
    img += inner * (tissue + _texture(rng) * rng.uniform(4, 9))
    # Dark structures, weighted by the tissue mask: two ventricles beside the midline
    # (a butterfly when splayed), then sulci, short thin clefts at the cortex.
    scale, gap, splay = rng.uniform(0.7, 1.3), rng.uniform(1.4, 2.4), rng.uniform(0.0, 0.45)
    side = np.array([-1.0, 1.0])
    vy, vx = _frame(cy, cx, tilt, rng.uniform(-1.5, 0.5) + rng.uniform(-0.4, 0.4, 2), side * gap)
    rows = [np.column_stack([vy, vx, 2.8 * scale * rng.uniform(0.85, 1.15, 2),
                             np.full(2, 1.1 * np.sqrt(scale)), tilt - side * splay])]
    amounts = [np.full(2, -rng.uniform(40, 65))]
    count = int(rng.integers(3, 9))
    angle, reach = rng.uniform(0, 2 * np.pi, count), rng.uniform(0.72, 0.88, count)
    sy, sx = _frame(cy, cx, tilt, reach * iy * np.sin(angle), reach * ix * np.cos(angle))
    rows.append(np.column_stack([sy, sx, rng.uniform(1.2, 2.4, count), np.full(count, 0.55),
                                 tilt + np.pi / 2 - angle]))
    amounts.append(-rng.uniform(8, 20, count))
    # The lesions' draws are made for every image, so that one generator state gives
    # the same anatomy and noise whatever the disease: a disease is a local change.
    bearing, depth = rng.uniform(0, 2 * np.pi), rng.uniform(0.38, 0.62)
    ly, lx = _frame(cy, cx, tilt, depth * iy * np.sin(bearing), depth * ix * np.cos(bearing))
    ry, rx, turn = rng.uniform(1.8, 2.8), rng.uniform(1.6, 2.4), rng.uniform(0, np.pi)
    oedema, bright, grain = rng.uniform(0, 12), rng.uniform(70, 110), _texture(rng, 4)
    radius, aspect, dark = rng.uniform(1.7, 2.8), rng.uniform(0.85, 1.15), rng.uniform(65, 90)
    if disease == 1:  # a ring of oedema around the tumor
        rows.append(np.array([(ly, lx, ry + 1.2, rx + 1.2, turn)]))
        amounts.append(np.array([-oedema]))
    img += _blobs(np.concatenate(amounts), np.concatenate(rows)) * inner
    # A lesion replaces the tissue under it (a ventricle too, rather than cancelling out).
    if disease == 1:  # tumor: a bright, often elongated, textured mass
        mass = _shapes([(ly, lx, ry, rx, turn)])[0]
        img += mass * (tissue + bright * (1.0 + 0.15 * grain) - img)
    elif disease == 2:  # cyst: round, sharp-edged, dark
        mass = _shapes([(ly, lx, radius, radius * aspect, turn)])[0] * inner
        img += mass * (tissue - dark - img)
    return _finish(rng, img)


def _lung(rng: np.random.Generator, disease: int) -> np.ndarray:
    cy, cx = SIDE / 2 + rng.uniform(-1.5, 1.5, 2)
    tilt = rng.uniform(-0.12, 0.12)
    img = np.full((SIDE, SIDE), rng.uniform(145, 180), np.float32)
    img += (_YY - SIDE / 2) * rng.uniform(0.8, 2.0) + _texture(rng) * rng.uniform(3, 7)
    side = np.array([-1.0, 1.0])
    fy, fx = _frame(cy, cx, tilt, rng.uniform(-1.0, 1.0, 2), side * rng.uniform(4.8, 6.3, 2))
    ry, rx = rng.uniform(8.0, 10.5, 2), rng.uniform(3.6, 5.0, 2)
    hy, hx = _frame(cy, cx, tilt, rng.uniform(3.0, 6.0), rng.uniform(0.5, 2.5))
    heart = np.array([hy, hx, rng.uniform(4.0, 6.0), rng.uniform(3.5, 5.5), rng.uniform(-0.5, 0.1)])
    *fields, heart_shape = _shapes(np.vstack([
        np.column_stack([fy, fx, ry, rx, tilt - side * rng.uniform(0.0, 0.15, 2)]), heart]))
    img += heart_shape * rng.uniform(10, 35)
    # Ribs: bands of one spacing, sloping down and out from the spine.
    period, slope = rng.uniform(3.0, 5.0), rng.uniform(0.15, 0.5)
    ribs_amp, phase = rng.uniform(0.08, 0.2), rng.uniform(0, 2 * np.pi)
    for k, field in enumerate(fields):
        ribs = np.sin(2 * np.pi / period * (_YY - side[k] * slope * (_XX - cx)) + phase)
        img -= field * rng.uniform(80, 115) * (1.0 + ribs_amp * ribs)
    # Bright marks inside the lungs: vessels (faint streaks from the hilum, dots end-on),
    # and the nodule.
    lungs = np.minimum((fields[0] + fields[1]) * 1.5, 1.0)
    rows: list[np.ndarray] = []
    amounts: list[np.ndarray] = []
    for k in range(2):
        count = int(rng.integers(1, 4))
        rows.append(np.column_stack([fy[k] + rng.uniform(-4, 4, count), fx[k] + rng.uniform(-2, 2, count),
                                     rng.uniform(1.5, 3.0, count), np.full(count, 0.5),
                                     rng.uniform(0, np.pi, count)]))
        amounts.append(rng.uniform(12, 28, count))
        count = int(rng.integers(0, 3))
        dots = rng.uniform(0.6, 0.9, count)
        rows.append(np.column_stack([fy[k] + rng.uniform(-6, 6, count),
                                     fx[k] + rng.uniform(-2.5, 2.5, count), dots, dots,
                                     np.zeros(count)]))
        amounts.append(rng.uniform(10, 22, count))
    k = int(rng.integers(2))  # the lesion's side; its draws are made for every image
    ny, nx = fy[k] + rng.uniform(-0.65, 0.65) * ry[k], fx[k] + rng.uniform(-2.0, 2.0)
    radius, aspect, turn, bright = (rng.uniform(1.5, 2.4), rng.uniform(0.8, 1.2),
                                    rng.uniform(0, np.pi), rng.uniform(70, 110))
    height, curve, fluid = rng.uniform(4.0, 8.5), rng.uniform(0.08, 0.25), rng.uniform(60, 90)
    if disease == 1:  # nodule inside one lung field
        rows.append(np.array([(ny, nx, radius, radius * aspect, turn)]))
        amounts.append(np.array([bright]))
    img += _blobs(np.concatenate(amounts), np.concatenate(rows)) * lungs
    if disease == 2:  # effusion: a fluid level with a meniscus filling the base
        level = fy[k] + ry[k] - height - curve * (_XX - fx[k]) ** 2
        img += fields[k] * np.clip(_YY - level + 0.5, 0, 1) * fluid
    return _finish(rng, img)


def _cell(rng: np.random.Generator, disease: int) -> np.ndarray:
    img = np.full((SIDE, SIDE), rng.uniform(195, 228), np.float32)
    img += rng.uniform(5, 12) * np.sin(_XX * rng.uniform(0.3, 0.6) + _YY * rng.uniform(0.2, 0.5)
                                       + rng.uniform(0, 2 * np.pi))
    img += _texture(rng) * rng.uniform(4, 9)
    count = int(rng.integers(10, 23))
    if rng.random() < 0.5:  # scattered
        centres = rng.uniform(2, SIDE - 2, (count, 2))
    else:  # in a few clusters, as in glands
        hubs = rng.uniform(6, SIDE - 6, (int(rng.integers(2, 5)), 2))
        spread = rng.uniform(2.5, 4.5)
        centres = hubs[rng.integers(len(hubs), size=count)] + rng.normal(0, spread, (count, 2))
        centres = np.clip(centres, 1.5, SIDE - 1.5)
    radius, aspect = rng.uniform(1.0, 1.7, count), rng.uniform(0.7, 1.0, count)
    dark = rng.uniform(70, 110, count)
    turn = rng.uniform(0, np.pi, count)
    big = int(rng.integers(1, 4))  # drawn for every image, as the lesions of the others
    big_radius, big_aspect, big_dark = (rng.uniform(2.1, 2.9, big), rng.uniform(0.6, 1.0, big),
                                        rng.uniform(125, 155, big))
    if disease == 1:  # atypia: one to three nuclei enlarged, darker and less round
        radius[:big], aspect[:big], dark[:big] = big_radius, big_aspect, big_dark
    nuclei = _shapes(np.column_stack([centres, radius, radius * aspect, turn]))
    img -= (nuclei * dark[:, None, None]).max(axis=0)  # touching nuclei do not add up
    return _finish(rng, img)


ORGANS: dict[str, tuple[tuple[str, ...], Renderer]] = {
    "Brain": (("normal", "tumor", "cyst"), _brain),
    "Lung": (("normal", "nodule", "effusion"), _lung),
    "Cell": (("normal", "atypia"), _cell),
}


def synthetic_infos() -> list[SubsetInfo]:
    """One pseudo-subset per synthetic organ, shaped like MedMNIST metadata."""
    return [
        SubsetInfo(
            flag=f"synthetic-{organ.lower()}",
            organ=organ,
            label_names=diseases,
            diseases=diseases,
            task="multi-class",
            channels=1,
            license="CC0-1.0 (generated by dnh)",
            source=f"synthetic v{VERSION}",
        )
        for organ, (diseases, _) in ORGANS.items()
    ]


def generate_subset(info: SubsetInfo, per_class: int, seed: int) -> dict[str, np.ndarray]:
    """Arrays of one synthetic subset, keyed like a MedMNIST `.npz` (`train_images`, ...)."""
    organ_index = list(ORGANS).index(info.organ)
    diseases, render = ORGANS[info.organ]
    rng = np.random.default_rng([seed, organ_index])
    labels = np.repeat(np.arange(len(diseases)), per_class)
    rng.shuffle(labels)
    images = np.stack([render(rng, int(d)) for d in labels]) if len(labels) else (
        np.zeros((0, SIDE, SIDE), np.uint8))
    bounds = np.cumsum([round(share * len(labels)) for share in _OFFICIAL_SHARES[:-1]])
    arrays: dict[str, np.ndarray] = {}
    for split, part in zip(OFFICIAL_SPLITS, np.split(np.arange(len(labels)), bounds)):
        arrays[f"{split}_images"] = images[part]
        arrays[f"{split}_labels"] = labels[part].astype(np.uint8)[:, None]
    return arrays
