from __future__ import annotations

import numpy as np

from dnhcli.data.synthetic import ORGANS, generate_subset, synthetic_infos


def _all(seed: int, per_class: int = 40) -> list[dict[str, np.ndarray]]:
    return [generate_subset(info, per_class, seed) for info in synthetic_infos()]


def test_shapes_classes_and_medmnist_form() -> None:
    infos = synthetic_infos()
    assert len(infos) >= 3
    assert all(2 <= len(info.diseases) <= 4 for info in infos)
    for info, arrays in zip(infos, _all(seed=0)):
        total = 0
        for split in ("train", "val", "test"):
            images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
            assert images.dtype == np.uint8 and images.shape[1:] == (28, 28)
            assert labels.dtype == np.uint8 and labels.shape == (len(images), 1)
            total += len(images)
        every = np.concatenate([arrays[f"{s}_labels"][:, 0] for s in ("train", "val", "test")])
        assert np.array_equal(np.bincount(every), [40] * len(info.diseases))
        assert total == 40 * len(info.diseases)


def test_same_seed_same_bytes_other_seed_other_images() -> None:
    first, again, other = _all(seed=5), _all(seed=5), _all(seed=6)
    for a, b, c in zip(first, again, other):
        assert all(np.array_equal(a[k], b[k]) for k in a)
        assert not np.array_equal(a["train_images"], c["train_images"])


def _stack(arrays_list: list[dict[str, np.ndarray]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    images, organs, diseases = [], [], []
    for organ, arrays in enumerate(arrays_list):
        for split in ("train", "val", "test"):
            images.append(arrays[f"{split}_images"].reshape(len(arrays[f"{split}_images"]), -1))
            organs.append(np.full(len(images[-1]), organ))
            diseases.append(arrays[f"{split}_labels"][:, 0])
    return np.concatenate(images).astype(np.float32), np.concatenate(organs), np.concatenate(diseases)


def test_organ_is_obvious_from_raw_pixels() -> None:
    train_x, train_organ, _ = _stack(_all(seed=1))
    test_x, test_organ, _ = _stack(_all(seed=2))
    centroids = np.stack([train_x[train_organ == o].mean(0) for o in range(len(ORGANS))])
    predicted = np.argmin(((test_x[:, None, :] - centroids[None]) ** 2).sum(-1), axis=1)
    assert np.mean(predicted == test_organ) > 0.97


def test_disease_is_a_local_change_not_a_global_one() -> None:
    images, organs, diseases = _stack(_all(seed=3, per_class=200))
    for organ in range(len(ORGANS)):
        normal = images[(organs == organ) & (diseases == 0)].reshape(-1, 28, 28)
        for disease in range(1, diseases[organs == organ].max() + 1):
            sick = images[(organs == organ) & (diseases == disease)].reshape(-1, 28, 28)
            # Mean brightness barely moves, yet individual images differ from normal
            # ones locally: the largest per-pixel change stands out from the typical one.
            assert abs(sick.mean() - normal.mean()) < 12
            change = np.abs(sick - normal.mean(0)).max(axis=(1, 2))
            baseline = np.abs(normal - normal.mean(0)).max(axis=(1, 2))
            assert np.median(change) > np.median(baseline)
