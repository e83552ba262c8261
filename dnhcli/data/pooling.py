"""Turn one subset's MedMNIST arrays into pooled grey images with (disease, raw label) rows."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from dnhcli.data.medmnist_source import OFFICIAL_SPLITS, SubsetInfo
from dnhcli.errors import DataError

IMAGE_SIDE = 28
# ITU-R BT.601 luma weights, the usual RGB -> grey conversion (as in PIL's "L" mode).
_LUMA = np.array([0.299, 0.587, 0.114])


@dataclass(frozen=True)
class PooledSubset:
    """All images of one subset, every official split pooled, in official order."""

    images: np.ndarray      # (N, 28, 28) uint8, grey
    diseases: np.ndarray    # (N,) int64, index into SubsetInfo.diseases
    raw_labels: np.ndarray  # (N, W) int16, the subset's own label vector
    origin: np.ndarray      # (N, 2) int32: official split (0 train, 1 val, 2 test), index in it

    def __len__(self) -> int:
        return int(self.images.shape[0])


def to_grey(images: np.ndarray) -> np.ndarray:
    """(N, H, W) or (N, H, W, 3) uint8 -> (N, H, W) uint8 grey (BT.601 luma, rounded)."""
    if images.ndim == 3:
        return images
    grey = images.astype(np.float32) @ _LUMA.astype(np.float32)
    return np.clip(np.rint(grey), 0, 255).astype(np.uint8)


def disease_index(info: SubsetInfo, labels: np.ndarray) -> np.ndarray:
    """One disease per image: the label itself, or for multi-label subsets the rule below.

    Multi-label rule (ChestMNIST): no finding set -> "normal" (index 0); otherwise
    the first finding set, in MedMNIST's label order (index = finding + 1).
    """
    if not info.multilabel:
        return labels[:, 0].astype(np.int64)
    positive = labels > 0
    first = np.argmax(positive, axis=1) + 1
    return np.where(positive.any(axis=1), first, 0).astype(np.int64)


def _check(info: SubsetInfo, split: str, images: np.ndarray, labels: np.ndarray) -> None:
    where = f"{info.flag} {split}"
    side = (IMAGE_SIDE, IMAGE_SIDE)
    ok_shape = images.ndim == 3 or (images.ndim == 4 and images.shape[3] == 3)
    if images.dtype != np.uint8 or not ok_shape or images.shape[1:3] != side:
        raise DataError(
            f"{where}: expected uint8 images of shape (N, 28, 28) or (N, 28, 28, 3), "
            f"got {images.dtype} {images.shape}",
            hint="dnh reads the 28x28 MedMNIST files ({flag}.npz)",
        )
    width = len(info.label_names) if info.multilabel else 1
    if labels.ndim != 2 or labels.shape != (images.shape[0], width):
        raise DataError(f"{where}: labels of shape {labels.shape} do not fit "
                        f"{images.shape[0]} images with {width} label column(s)")
    if not np.issubdtype(labels.dtype, np.integer):
        raise DataError(f"{where}: labels must be integers, got {labels.dtype}")
    top = 1 if info.multilabel else len(info.label_names) - 1
    if labels.size and (labels.min() < 0 or labels.max() > top):
        raise DataError(f"{where}: label values outside 0..{top}")


def pool_subset(info: SubsetInfo, arrays: Mapping[str, np.ndarray]) -> PooledSubset:
    """Pool the train, val and test splits of a subset, checking shapes and labels."""
    images, diseases, raw, origin = [], [], [], []
    for code, split in enumerate(OFFICIAL_SPLITS):
        split_images, split_labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        _check(info, split, split_images, split_labels)
        n = split_images.shape[0]
        images.append(to_grey(split_images))
        diseases.append(disease_index(info, split_labels))
        raw.append(split_labels.astype(np.int16))
        origin.append(np.stack([np.full(n, code), np.arange(n)], axis=1).astype(np.int32))
    return PooledSubset(
        images=np.concatenate(images),
        diseases=np.concatenate(diseases),
        raw_labels=np.concatenate(raw),
        origin=np.concatenate(origin),
    )
