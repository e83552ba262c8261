from __future__ import annotations

import numpy as np
import pytest

from dnhcli.errors import InputError
from dnhcli.evaluation.baselines import LinearHash, fit_baseline, quantisation_loss


def _images(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (3, 28, 28))
    noise = rng.integers(-20, 21, (n, 28, 28))
    return np.clip(base[rng.integers(0, 3, n)] + noise, 0, 255).astype(np.uint8)


@pytest.mark.parametrize("name", ["lsh", "pca-itq"])
def test_baselines_are_seeded_and_shaped(name: str) -> None:
    train = _images(200, 0)
    a, b = fit_baseline(name, train, 32, seed=1), fit_baseline(name, train, 32, seed=1)
    h = a.encode(train[:5])
    assert h.shape == (5, 32) and h.dtype == np.float32
    assert np.array_equal(h, b.encode(train[:5]))
    assert not np.array_equal(h, fit_baseline(name, train, 32, seed=2).encode(train[:5]))


def test_itq_rotation_lowers_the_quantisation_loss_of_pca() -> None:
    train = _images(300, 0)
    itq = fit_baseline("pca-itq", train, 16, seed=0)
    x = train.reshape(300, -1) / 255.0
    _, _, vt = np.linalg.svd(x - x.mean(axis=0), full_matrices=False)
    pca_only = LinearHash("pca", x.mean(axis=0), vt[:16].T)  # the same subspace, not rotated
    assert quantisation_loss(itq, train) < quantisation_loss(pca_only, train)
    rotation = itq.projection.T @ itq.projection  # orthonormal PCA columns times an orthogonal R
    assert np.allclose(rotation, np.eye(16), atol=1e-8)


def test_bad_arguments() -> None:
    with pytest.raises(InputError):
        fit_baseline("sift", _images(10, 0), 16)
    with pytest.raises(InputError):
        fit_baseline("pca-itq", _images(10, 0), 16)  # more bits than images
    with pytest.raises(InputError):
        fit_baseline("lsh", _images(1, 0), 16)
