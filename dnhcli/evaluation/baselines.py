"""No-learning baselines on raw pixels: random-hyperplane LSH and PCA + ITQ.

Both see images as vectors of 784 pixels scaled to [0, 1], centred by the mean of the training
images, and give continuous codes whose signs are the bits (so they can be evaluated, tie-broken
and packed exactly like the network's codes).

- LSH (Charikar 2002): h = x W with W Gaussian (784, K), seeded.
- PCA + ITQ (Gong and Lazebnik, CVPR 2011): the top-K principal directions of the training images,
  then the orthogonal rotation R minimising the quantisation loss ||sign(V R) - V R||_F, found by
  alternating B = sign(V R) and the orthogonal Procrustes solution R = U Wt of svd(V^T B).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from threadpoolctl import threadpool_limits

from dnhcli.errors import InputError
from dnhcli.index.codes import validate_bits

BASELINES = ("lsh", "pca-itq")
ITQ_ITERATIONS = 50


def _pixels(images: np.ndarray) -> np.ndarray:
    images = np.asarray(images)
    return images.reshape(len(images), -1).astype(np.float64) / 255.0


@dataclass(frozen=True)
class LinearHash:
    """h = (x - mean) @ projection, on pixels scaled to [0, 1]."""

    name: str
    mean: np.ndarray
    projection: np.ndarray

    @property
    def bits(self) -> int:
        return int(self.projection.shape[1])

    def encode(self, images: np.ndarray) -> np.ndarray:
        """Continuous codes (N, K) float32 of uint8 images (N, 28, 28)."""
        return ((_pixels(images) - self.mean) @ self.projection).astype(np.float32)


def fit_baseline(name: str, train_images: np.ndarray, bits: int, seed: int = 0,
                 threads: int | None = 1) -> LinearHash:
    """Fit `lsh` or `pca-itq` on the training images (seeded). BLAS runs on `threads` threads
    (None: its default); multi-threaded OpenBLAS can slow down 40x on a busy machine."""
    with threadpool_limits(limits=threads):
        return _fit(name, train_images, bits, seed)


def _fit(name: str, train_images: np.ndarray, bits: int, seed: int) -> LinearHash:
    validate_bits(bits)
    x = _pixels(train_images)
    if len(x) < 2:
        raise InputError("a baseline needs at least 2 training images")
    mean = x.mean(axis=0)
    rng = np.random.default_rng(seed)
    if name == "lsh":
        return LinearHash(name, mean, rng.standard_normal((x.shape[1], bits)))
    if name != "pca-itq":
        raise InputError(f"unknown baseline {name!r}", hint=f"choose from: {', '.join(BASELINES)}")
    if bits > min(x.shape):
        raise InputError(f"PCA + ITQ needs at most {min(x.shape)} bits for these images, got {bits}")
    centred = x - mean
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    pca = vt[:bits].T  # (784, K)
    v = centred @ pca
    rotation, _ = np.linalg.qr(rng.standard_normal((bits, bits)))
    for _ in range(ITQ_ITERATIONS):
        b = np.where(v @ rotation >= 0, 1.0, -1.0)
        u, _, wt = np.linalg.svd(v.T @ b)
        rotation = u @ wt
    return LinearHash(name, mean, pca @ rotation)


def quantisation_loss(model: LinearHash, images: np.ndarray) -> float:
    """Mean ||sign(h) - h||^2 per image: what ITQ minimises (lower is better)."""
    h = model.encode(images).astype(np.float64)
    return float(((np.where(h >= 0, 1.0, -1.0) - h) ** 2).sum(axis=1).mean())
