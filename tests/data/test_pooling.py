from __future__ import annotations

import numpy as np
import pytest

from dnhcli.data import medmnist_source as source
from dnhcli.data.pooling import disease_index, pool_subset, to_grey
from dnhcli.errors import DataError


def test_to_grey_uses_bt601_luma_and_keeps_grey_images() -> None:
    rgb = np.zeros((1, 28, 28, 3), np.uint8)
    rgb[0, 0, 0] = (255, 0, 0)
    rgb[0, 0, 1] = (0, 255, 0)
    rgb[0, 0, 2] = (0, 0, 255)
    rgb[0, 0, 3] = (200, 200, 200)
    grey = to_grey(rgb)
    assert grey.shape == (1, 28, 28) and grey.dtype == np.uint8
    assert grey[0, 0, :4].tolist() == [76, 150, 29, 200]  # 0.299, 0.587, 0.114 of 255
    flat = np.full((2, 28, 28), 7, np.uint8)
    assert to_grey(flat) is flat


def test_chest_rule_normal_when_no_finding_else_first_finding() -> None:
    info = source.subset_info("chestmnist")
    assert info.diseases[0] == "normal" and info.diseases[1] == "atelectasis"
    labels = np.zeros((4, 14), np.uint8)
    labels[1, 2] = 1                     # effusion only
    labels[2, [5, 1]] = 1                # nodule and cardiomegaly -> cardiomegaly (first)
    labels[3, 13] = 1                    # hernia
    got = disease_index(info, labels)
    assert got.tolist() == [0, 3, 2, 14]
    assert [info.diseases[i] for i in got] == ["normal", "effusion", "cardiomegaly", "hernia"]


def test_pool_subset_keeps_order_origin_and_raw_labels() -> None:
    info = source.subset_info("breastmnist")
    arrays = {}
    for n, split in zip((3, 1, 2), ("train", "val", "test")):
        arrays[f"{split}_images"] = np.full((n, 28, 28), n, np.uint8)
        arrays[f"{split}_labels"] = (np.arange(n) % 2).astype(np.uint8)[:, None]
    pooled = pool_subset(info, arrays)
    assert len(pooled) == 6
    assert pooled.origin.tolist() == [[0, 0], [0, 1], [0, 2], [1, 0], [2, 0], [2, 1]]
    assert pooled.diseases.tolist() == [0, 1, 0, 0, 0, 1]
    assert pooled.raw_labels.shape == (6, 1) and pooled.raw_labels.dtype == np.int16


@pytest.mark.parametrize("images,labels,message", [
    (np.zeros((2, 32, 32), np.uint8), np.zeros((2, 1), np.uint8), "expected uint8 images"),
    (np.zeros((2, 28, 28), np.float32), np.zeros((2, 1), np.uint8), "expected uint8 images"),
    (np.zeros((2, 28, 28), np.uint8), np.zeros((3, 1), np.uint8), "do not fit"),
    (np.zeros((2, 28, 28), np.uint8), np.full((2, 1), 7, np.uint8), "outside"),
    (np.zeros((2, 28, 28), np.uint8), np.zeros((2, 1), np.float32), "integers"),
])
def test_pool_subset_rejects_malformed_arrays(images: np.ndarray, labels: np.ndarray,
                                              message: str) -> None:
    info = source.subset_info("breastmnist")
    arrays = {f"{s}_{k}": (images if k == "images" else labels)
              for s in ("train", "val", "test") for k in ("images", "labels")}
    with pytest.raises(DataError, match=message):
        pool_subset(info, arrays)
