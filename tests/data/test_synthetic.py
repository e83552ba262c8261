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
        normal = images[(organs == organ) & (diseases == 0)]
        for disease in range(1, diseases[organs == organ].max() + 1):
            sick = images[(organs == organ) & (diseases == disease)]
            assert abs(sick.mean() - normal.mean()) < 12  # mean brightness barely moves


def test_same_generator_state_gives_the_same_anatomy_whatever_the_disease() -> None:
    # One generator state, rendered normal and sick: the images differ in a small
    # region only, and there clearly.
    for diseases, render in ORGANS.values():
        for disease in range(1, len(diseases)):
            changed, peak = [], []
            for seed in range(60):
                normal = render(np.random.default_rng(seed), 0).astype(np.float32)
                sick = render(np.random.default_rng(seed), disease).astype(np.float32)
                diff = np.abs(sick - normal)
                changed.append(np.mean(diff > 12))
                peak.append(diff.max())
            assert 0 < np.median(changed) and max(changed) < 0.15
            assert np.median(peak) > 40


def _smooth_standardised(images: np.ndarray) -> np.ndarray:
    """3x3 box blur (to damp the sensor noise) and per-image standardisation, flattened."""
    padded = np.pad(images.astype(np.float32), ((0, 0), (1, 1), (1, 1)), mode="edge")
    blurred = np.mean([padded[:, i:i + 28, j:j + 28] for i in range(3) for j in range(3)], axis=0)
    flat = blurred.reshape(len(images), -1)
    flat = flat - flat.mean(1, keepdims=True)
    return flat / flat.std(1, keepdims=True)


def test_every_image_is_its_own_instance() -> None:
    # Within every class, "normal" included, an image's nearest class-mate differs from it
    # by a good share of what a 1-pixel shift of the image itself does: no near-copies.
    for info, arrays in zip(synthetic_infos(), _all(seed=4, per_class=100)):
        images = np.concatenate([arrays[f"{s}_images"] for s in ("train", "val", "test")])
        labels = np.concatenate([arrays[f"{s}_labels"][:, 0] for s in ("train", "val", "test")])
        for disease in range(len(info.diseases)):
            members = images[labels == disease]
            flat = _smooth_standardised(members)
            dist = ((flat[:, None] - flat[None]) ** 2).mean(-1)
            np.fill_diagonal(dist, np.inf)
            shifted = ((flat - _smooth_standardised(np.roll(members, 1, axis=2))) ** 2).mean(-1)
            assert np.median(dist.min(1)) > 0.5 * np.median(shifted), (info.organ, disease)
