"""`prepare-data --images`: each label source on small trees, keys as `dnh hash` gives them,
patient-disjoint seeded splits, and refused inputs that leave nothing behind."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from dnhcli.data.dataset import PreparedDataset
from dnhcli.data.images import iter_files, iter_split
from dnhcli.data.keys import dataset_key
from dnhcli.data.sources.own import ImagesConfig, prepare_images
from dnhcli.data.splits import SPLITS
from dnhcli.errors import DataError, InputError

from .conftest import write_picture


def _every(ds: PreparedDataset, kind: str) -> np.ndarray:
    return np.concatenate([np.asarray(getattr(ds.split(s), kind)) for s in SPLITS])


def _patient_sets(ds: PreparedDataset) -> list[set[int]]:
    return [set(np.asarray(ds.split(s).patients).tolist()) - {-1} for s in SPLITS]


def test_class_folders_keys_and_pixels_as_dnh_hash_reads_them(class_tree: Callable[..., Path],
                                                             tmp_path: Path) -> None:
    root = class_tree()
    result = prepare_images(ImagesConfig(out=tmp_path / "ds", images=root, seed=1))
    assert result.classes == {"benign": 8, "malignant": 8} and result.to_json()["labels"] == "folders"
    ds = PreparedDataset.open(tmp_path / "ds", verify=True)
    assert ds.manifest["format_version"] == 2 and ds.labelled and ds.organ_names == ["all"]
    hashed = {m["key"]: image for chunk in iter_files([root])
              for m, image in zip(chunk.metadata, chunk.images)}
    keys, images = _every(ds, "keys"), _every(ds, "images")
    assert sorted(keys.tolist()) == sorted(hashed) and keys.dtype.kind == "U"
    assert all(np.array_equal(hashed[str(k)], image) for k, image in zip(keys, images))
    classes = _every(ds, "labels")[:, 0]
    assert all(str(k).startswith(f"file:{ds.class_names[c]}/") for k, c in zip(keys, classes))
    # `dnh hash --data` keys the items by the stored keys, and a version-1 folder by its fingerprint
    meta = [m for chunk in iter_split(ds, "query") for m in chunk.metadata]
    assert [m["key"] for m in meta] == ds.item_keys("query") == np.asarray(ds.split("query").keys).tolist()
    assert meta[0]["class"] in ds.class_names


def test_version_one_folders_still_open(synthetic_dataset: Path) -> None:
    ds = PreparedDataset.open(synthetic_dataset, verify=True)
    assert ds.split("train").keys is None and ds.labelled
    assert ds.item_keys("val", 0, 2) == [dataset_key(ds.fingerprint, "val", i) for i in range(2)]


def test_group_and_class_folders(class_tree: Callable[..., Path], tmp_path: Path) -> None:
    class_tree(("benign", "malignant"), 6, group="Breast")
    root = class_tree(("normal", "tumor", "cyst"), 6, group="Brain")
    prepare_images(ImagesConfig(out=tmp_path / "ds", images=root, layout="group/class"))
    ds = PreparedDataset.open(tmp_path / "ds")
    assert ds.organ_names == ["Brain", "Breast"]
    assert ds.class_names == ["Brain_cyst", "Brain_normal", "Brain_tumor",
                              "Breast_benign", "Breast_malignant"]
    assert ds.disease_names(1) == ["benign", "malignant"] and ds.class_organs == [0, 0, 0, 1, 1]


def test_table_with_patients_gives_patient_disjoint_seeded_splits(tmp_path: Path) -> None:
    root, lines = tmp_path / "flat", ["file,diagnosis,patient_id"]
    for i in range(48):
        write_picture(root / f"scan{i:02d}.png", i)
        lines.append(f"scan{i:02d}.png,{'ab' if i % 2 else 'no'}rmal,P{i // 3}")
    (tmp_path / "labels.csv").write_text("\n".join(lines) + "\n")
    config = ImagesConfig(out=tmp_path / "a", images=root, labels=tmp_path / "labels.csv",
                          label_columns="class=diagnosis", seed=3)
    result = prepare_images(config)
    assert result.classes == {"abrmal": 24, "normal": 24}
    ds = PreparedDataset.open(tmp_path / "a")
    owners = _patient_sets(ds)
    assert sum(map(len, owners)) == 16 and all(not owners[a] & owners[b] for a in range(4) for b in range(a))
    assert ds.manifest["patients"]["splits"] == {s: len(o) for s, o in zip(SPLITS, owners)}
    prepare_images(ImagesConfig(**{**config.__dict__, "out": tmp_path / "b"}))
    assert all((tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes()
               for f in ("manifest.json", *(f"{s}_keys.npy" for s in SPLITS)))
    prepare_images(ImagesConfig(**{**config.__dict__, "out": tmp_path / "c", "seed": 4}))
    assert (tmp_path / "a" / "train_keys.npy").read_bytes() != (
        tmp_path / "c" / "train_keys.npy").read_bytes()


def test_dicom_tags_patient_ids_and_names_never_stored(dicom_tree: Path, tmp_path: Path) -> None:
    result = prepare_images(ImagesConfig(out=tmp_path / "ds", images=dicom_tree, label_tags=("Modality",)))
    assert result.classes == {"CT": 18, "MR": 18 + 3}  # the 3-frame file gives 3 items
    ds = PreparedDataset.open(tmp_path / "ds")
    keys = _every(ds, "keys").tolist()
    assert all(k.startswith("dicom:") for k in keys) and sum(k.endswith("]") for k in keys) == 3
    owners = _patient_sets(ds)
    assert sum(map(len, owners)) == 12 and all(not owners[a] & owners[b] for a in range(4) for b in range(a))
    for file in (tmp_path / "ds").iterdir():
        data = file.read_bytes()
        assert b"PID" not in data and b"Doe" not in data and "PID".encode("utf-32-le") not in data


def test_dicom_class_and_group_tags(dicom_tree: Path, tmp_path: Path) -> None:
    prepare_images(ImagesConfig(out=tmp_path / "ds", images=dicom_tree,
                                label_tags=("Modality", "BodyPartExamined")))
    ds = PreparedDataset.open(tmp_path / "ds")
    assert ds.organ_names == ["CHEST", "HEAD"] and "HEAD_MR" in ds.class_names


def test_unlabelled_set(tmp_path: Path) -> None:
    root = tmp_path / "flat"
    for i in range(10):
        write_picture(root / f"{i}.png", i)
    np.save(root / "stack.npy", np.zeros((4, 28, 28), np.uint8))
    result = prepare_images(ImagesConfig(out=tmp_path / "ds", images=root))
    assert result.classes == {} and sum(result.splits.values()) == 14 and not result.to_json()["labelled"]
    ds = PreparedDataset.open(tmp_path / "ds", verify=True)
    assert not ds.labelled and ds.manifest["labels"] == {"source": "none"}
    assert (_every(ds, "labels") == -1).all()
    assert sum(k.endswith("]") for k in _every(ds, "keys").tolist()) == 4
    assert all("class" not in m for chunk in iter_split(ds, "train") for m in chunk.metadata)


def test_a_bad_file_stops_the_run_or_is_skipped(class_tree: Callable[..., Path], tmp_path: Path) -> None:
    root = class_tree()
    (root / "benign" / "broken.png").write_bytes(b"not a picture")
    with pytest.raises(InputError, match="broken.png"):
        prepare_images(ImagesConfig(out=tmp_path / "ds", images=root))
    assert not (tmp_path / "ds").exists()
    result = prepare_images(ImagesConfig(out=tmp_path / "ds", images=root, on_error="skip"))
    assert sum(result.splits.values()) == 16 and "broken.png" in result.skipped[0]["source"]
    assert result.manifest["images"]["skipped"] == 1


def test_a_missing_label_stops_the_run_or_is_skipped(class_tree: Callable[..., Path], tmp_path: Path) -> None:
    root = class_tree()
    write_picture(root / "stray.png", 1)
    with pytest.raises(InputError, match=r"stray.png: no label \(not in a class folder"):
        prepare_images(ImagesConfig(out=tmp_path / "ds", images=root, layout="class"))
    assert not (tmp_path / "ds").exists()
    result = prepare_images(ImagesConfig(out=tmp_path / "ds", images=root, layout="class", on_error="skip"))
    assert sum(result.splits.values()) == 16 and "no label" in result.skipped[0]["error"]


@pytest.mark.parametrize("table,columns,message", [
    ("path,label\na.png,x\n", None, "line 2 names 'a.png', which is no image"),
    ("path,label\nbenign/0.tif,x\nbenign/0.tif,y\n", None, "lines 2 and 3 both label benign/0.tif"),
    ("file,dx\nbenign/0.tif,x\n", None, "has no class column"),
    ("path,label\nbenign/0.tif,x\n", "class=nope", "has no column 'nope'"),
    ("path,label\nbenign/0.tif,x\n", "kind=x", "malformed --label-columns"),
])
def test_table_errors(class_tree: Callable[..., Path], tmp_path: Path, table: str, columns: str | None,
                      message: str) -> None:
    root = class_tree()
    (tmp_path / "t.csv").write_text(table)
    with pytest.raises(InputError, match=message):
        prepare_images(ImagesConfig(out=tmp_path / "ds", images=root, labels=tmp_path / "t.csv",
                                    label_columns=columns))
    assert not (tmp_path / "ds").exists()


def test_refused_sources_and_sizes(class_tree: Callable[..., Path], dicom_tree: Path, tmp_path: Path) -> None:
    root = class_tree(per_class=3)
    with pytest.raises(DataError, match="'benign' has 3 image"):
        prepare_images(ImagesConfig(out=tmp_path / "ds", images=root))
    with pytest.raises(InputError, match="exclude each other"):
        prepare_images(ImagesConfig(out=tmp_path / "ds", images=root, layout="class",
                                    label_tags=("Modality",)))
    with pytest.raises(InputError, match="not a DICOM keyword"):
        prepare_images(ImagesConfig(out=tmp_path / "ds", images=dicom_tree, label_tags=("Nope",)))
    with pytest.raises(InputError, match="not a DICOM file, so it has no Modality"):
        prepare_images(ImagesConfig(out=tmp_path / "ds", images=root, label_tags=("Modality",)))
    assert not (tmp_path / "ds").exists()


def test_a_repeated_key_stops_the_run_or_keeps_the_first(tmp_path: Path) -> None:
    from pydicom.data import get_testdata_file

    root = tmp_path / "shipped"
    data = Path(str(get_testdata_file("CT_small.dcm"))).read_bytes()
    for i in range(2):
        (root / f"copy{i}").mkdir(parents=True)
        (root / f"copy{i}" / "CT_small.dcm").write_bytes(data)
    for i in range(8):
        write_picture(root / "more" / f"{i}.png", i)
    with pytest.raises(InputError, match=r"copy1/CT_small.dcm: same key dicom:.* as .*copy0/CT_small.dcm"):
        prepare_images(ImagesConfig(out=tmp_path / "ds", images=root, layout="none"))
    assert not (tmp_path / "ds").exists()
    result = prepare_images(ImagesConfig(out=tmp_path / "ds", images=root, layout="none", on_error="skip"))
    assert sum(result.splits.values()) == 9 and "copy1" in result.skipped[0]["source"]


def test_skip_leaves_out_a_class_too_small_to_split(tmp_path: Path) -> None:
    root = tmp_path / "images"
    for name, count in (("benign", 8), ("malignant", 8), ("rare", 3)):
        for i in range(count):
            write_picture(root / name / f"{i}.png", 7 * i + len(name))
    with pytest.raises(DataError, match="'rare' has 3 image"):
        prepare_images(ImagesConfig(out=tmp_path / "ds", images=root))
    result = prepare_images(ImagesConfig(out=tmp_path / "ds", images=root, on_error="skip"))
    assert result.classes == {"benign": 8, "malignant": 8}
    assert sorted(f["source"].rsplit("/", 1)[-1] for f in result.skipped) == ["0.png", "1.png", "2.png"]
    assert all("'rare' has 3 image(s), fewer than the 4 splits" in f["error"] for f in result.skipped)
