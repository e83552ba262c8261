from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dnhcli.data.dataset import PreparedDataset
from dnhcli.data.prepare import PrepareConfig, prepare_dataset
from dnhcli.data.splits import SPLITS, allocate
from dnhcli.errors import DataError, InputError, OutputExistsError


def _origins(ds: PreparedDataset, split: str) -> set[tuple[int, ...]]:
    return {tuple(row) for row in np.asarray(ds.split(split).origin)}


def test_synthetic_dataset_end_to_end(tmp_path: Path) -> None:
    result = prepare_dataset(PrepareConfig(out=tmp_path / "ds", synthetic=True,
                                           synthetic_per_class=30, seed=1))
    assert result.to_json()["splits"] == {"train": 144, "val": 24, "gallery": 48, "query": 24}
    ds = PreparedDataset.open(tmp_path / "ds", verify=True)
    assert ds.organ_names == ["Brain", "Lung", "Cell"]
    assert ds.class_names[:3] == ["Brain_normal", "Brain_tumor", "Brain_cyst"]
    train = ds.split("train")
    assert isinstance(train.images, np.memmap)
    assert train.images.shape == (144, 28, 28) and train.images.dtype == np.uint8
    for c, row in enumerate(ds.manifest["classes"]):
        assert (ds.split("train").classes == c).sum() == row["splits"]["train"] == 18
        names = ds.disease_names(row["organ"])
        assert row["name"] == f"{ds.organ_names[row['organ']]}_{names[row['disease']]}"
    assert not _origins(ds, "gallery") & _origins(ds, "query")


def test_same_seed_gives_byte_identical_files_other_seed_does_not(tmp_path: Path) -> None:
    paths = []
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        prepare_dataset(PrepareConfig(out=tmp_path / name, synthetic=True,
                                      synthetic_per_class=20, seed=seed))
        paths.append(tmp_path / name)
    files = sorted(p.name for p in paths[0].iterdir())
    assert len(files) == 17
    assert all((paths[0] / f).read_bytes() == (paths[1] / f).read_bytes() for f in files)
    assert (paths[0] / "train_images.npy").read_bytes() != (paths[2] / "train_images.npy").read_bytes()


def test_medmnist_pooling_with_rgb_and_multilabel_subsets(fake_root: Path, tmp_path: Path) -> None:
    result = prepare_dataset(PrepareConfig(out=tmp_path / "ds", root=fake_root,
                                           subsets=("breast", "retina", "chest")))
    ds = PreparedDataset.open(result.out)
    assert ds.organ_names == ["Breast", "Retina", "Chest"]
    assert sum(result.splits.values()) == 48 + 64 + 64
    assert "Chest_normal" in result.classes and "Retina_grade4" in result.classes
    every = [ds.split(s) for s in SPLITS]
    raw = np.concatenate([np.asarray(s.raw_labels) for s in every])
    organs = np.concatenate([s.organs for s in every])
    diseases = np.concatenate([s.diseases for s in every])
    assert raw.shape[1] == 14
    assert (raw[organs != 2][:, 1:] == -1).all()          # single-label rows padded
    chest = raw[organs == 2]
    assert set(np.unique(chest)) <= {0, 1}                  # full 14-finding vector kept
    no_finding = chest.sum(1) == 0
    assert (diseases[organs == 2][no_finding] == 0).all()
    first = np.argmax(chest[~no_finding] > 0, axis=1) + 1
    assert np.array_equal(diseases[organs == 2][~no_finding], first)
    subsets = ds.manifest["subsets"]
    assert [s["flag"] for s in subsets] == ["breastmnist", "retinamnist", "chestmnist"]
    assert all(len(s["md5"]) == 32 and s["license"] for s in subsets)


def test_every_class_with_ten_images_is_in_every_split(fake_root: Path, tmp_path: Path) -> None:
    result = prepare_dataset(PrepareConfig(out=tmp_path / "ds", root=fake_root,
                                           subsets=("breast", "retina", "chest")))
    for row in result.manifest["classes"]:
        counts = [row["splits"][s] for s in SPLITS]
        assert counts == allocate(row["count"], (6, 1, 2, 1)).tolist()
        if row["count"] >= 10:
            assert min(counts) >= 1


def test_max_per_class_caps_each_class(tmp_path: Path) -> None:
    result = prepare_dataset(PrepareConfig(out=tmp_path / "ds", synthetic=True,
                                           synthetic_per_class=50, max_per_class=20))
    assert set(result.classes.values()) == {20}


def test_existing_output_is_refused_then_replaced_with_force(tmp_path: Path) -> None:
    out = tmp_path / "ds"
    prepare_dataset(PrepareConfig(out=out, synthetic=True, synthetic_per_class=20, seed=0))
    before = (out / "manifest.json").read_bytes()
    with pytest.raises(OutputExistsError, match="not empty"):
        prepare_dataset(PrepareConfig(out=out, synthetic=True, synthetic_per_class=20, seed=1))
    assert (out / "manifest.json").read_bytes() == before
    prepare_dataset(PrepareConfig(out=out, synthetic=True, synthetic_per_class=20, seed=1,
                                  force=True))
    assert (out / "manifest.json").read_bytes() != before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]


def test_force_never_replaces_a_folder_dnh_did_not_make(tmp_path: Path) -> None:
    (tmp_path / "precious").mkdir()
    (tmp_path / "precious" / "notes.txt").write_text("keep me")
    with pytest.raises(OutputExistsError, match="not a dnh dataset"):
        prepare_dataset(PrepareConfig(out=tmp_path / "precious", synthetic=True, force=True))
    assert (tmp_path / "precious" / "notes.txt").read_text() == "keep me"


def test_interrupted_write_leaves_nothing_and_keeps_the_old_dataset(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "ds"
    prepare_dataset(PrepareConfig(out=out, synthetic=True, synthetic_per_class=20))
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    real_save, calls = np.save, []

    def failing_save(*args: object, **kwargs: object) -> None:
        calls.append(1)
        if len(calls) == 5:
            raise KeyboardInterrupt
        real_save(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(np, "save", failing_save)
    for target, force in ((tmp_path / "new", False), (out, True)):
        calls.clear()
        with pytest.raises(KeyboardInterrupt):
            prepare_dataset(PrepareConfig(out=target, synthetic=True, synthetic_per_class=20,
                                          seed=9, force=force))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_missing_file_fails_before_anything_is_written(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not found"):
        prepare_dataset(PrepareConfig(out=tmp_path / "ds", root=tmp_path / "none",
                                      subsets=("breast",)))
    assert not (tmp_path / "ds").exists()


def test_duplicate_subsets_are_refused(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="twice"):
        prepare_dataset(PrepareConfig(out=tmp_path / "ds", subsets=("breast", "breastmnist")))


def test_opening_detects_a_changed_or_foreign_folder(tmp_path: Path) -> None:
    out = tmp_path / "ds"
    prepare_dataset(PrepareConfig(out=out, synthetic=True, synthetic_per_class=20))
    with pytest.raises(DataError, match="not a prepared dnh dataset"):
        PreparedDataset.open(tmp_path)
    np.save(out / "val_images.npy", np.zeros((3, 28, 28), np.uint8))
    ds = PreparedDataset.open(out)
    with pytest.raises(DataError, match="does not match the dataset manifest"):
        ds.split("val")
    with pytest.raises(DataError, match="changed"):
        ds.verify()


def test_real_breast_pneumonia_retina(real_medmnist: Path, tmp_path: Path) -> None:
    config = PrepareConfig(out=tmp_path / "a", root=real_medmnist,
                           subsets=("breast", "pneumonia", "retina"), seed=0)
    result = prepare_dataset(config)
    assert sum(result.splits.values()) == 8236
    assert len(result.classes) == 9
    for row in result.manifest["classes"]:
        exact = row["count"] * np.array([6, 1, 2, 1]) / 10
        assert (np.abs(np.array([row["splits"][s] for s in SPLITS]) - exact) < 1).all()
    ds = PreparedDataset.open(result.out, verify=True)
    assert not _origins(ds, "gallery") & _origins(ds, "query")
    again = prepare_dataset(PrepareConfig(**{**config.__dict__, "out": tmp_path / "b"}))
    assert again.manifest == result.manifest
    for p in (tmp_path / "a").iterdir():
        assert p.read_bytes() == (tmp_path / "b" / p.name).read_bytes()
