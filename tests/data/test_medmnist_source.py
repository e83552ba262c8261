from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dnhcli.data import medmnist_source as source
from dnhcli.errors import DataError, DownloadError, InputError


@pytest.mark.parametrize("name,flag", [("breast", "breastmnist"), ("BreastMNIST", "breastmnist"),
                                       (" oct ", "octmnist"), ("chestmnist", "chestmnist")])
def test_resolve_subset_accepts_short_and_full_names(name: str, flag: str) -> None:
    assert source.resolve_subset(name) == flag


@pytest.mark.parametrize("name", ["foo", "organmnist3d", "", "nodule3d"])
def test_resolve_subset_rejects_unknown_and_3d(name: str) -> None:
    with pytest.raises(InputError, match="unknown MedMNIST subset") as err:
        source.resolve_subset(name)
    assert "breast" in (err.value.hint or "")


def test_names_of_organs_and_diseases() -> None:
    assert source.subset_info("octmnist").organ == "OCT"
    assert source.subset_info("retinamnist").diseases == tuple(f"grade{i}" for i in range(5))
    assert source.subset_info("breastmnist").diseases == ("malignant", "normal-benign")
    tissue = source.subset_info("tissuemnist")
    assert tissue.diseases[0] == "collecting-duct-connecting-tubule"
    assert len({source.subset_info(f).organ for f in source.available_flags()}) == len(
        source.available_flags())


def test_default_root_follows_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(source.ROOT_ENV, str(tmp_path))
    assert source.default_root() == tmp_path
    monkeypatch.delenv(source.ROOT_ENV)
    assert source.default_root() == Path.home() / ".medmnist"


def test_missing_file_says_where_to_get_it_and_where_to_put_it(tmp_path: Path) -> None:
    info = source.subset_info("breastmnist")
    with pytest.raises(DataError) as err:
        source.locate(info, tmp_path)
    text = str(err.value)
    assert str(tmp_path / "breastmnist.npz") in text
    assert info.url in text and "750601b1f35ba3300ea97c75c52ff8f6" in text
    assert "--download" in text and "--root" in text
    assert list(tmp_path.iterdir()) == []


def test_wrong_md5_is_refused(fake_root: Path) -> None:
    info = source.subset_info("breastmnist")
    (fake_root / "breastmnist.npz").write_bytes(b"not the file")
    with pytest.raises(DataError, match="MD5 mismatch"):
        source.locate(info, fake_root)


def test_download_fetches_verifies_and_places_the_file(fake_root: Path, tmp_path: Path) -> None:
    info = source.subset_info("retinamnist")
    target_root = tmp_path / "empty-root"
    seen: list[tuple[str, int, int]] = []
    path = source.locate(info, target_root, download=True, progress=lambda *a: seen.append(a))
    assert path == target_root / "retinamnist.npz"
    assert path.read_bytes() == (fake_root / "retinamnist.npz").read_bytes()
    assert seen and seen[-1][1] == path.stat().st_size
    assert [p.name for p in target_root.iterdir()] == ["retinamnist.npz"]


def test_download_with_a_wrong_checksum_leaves_nothing(fake_root: Path, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    info = source.subset_info("breastmnist")
    bad = source.SubsetInfo(**{**info.__dict__, "md5": "0" * 32})
    target_root = tmp_path / "empty-root"
    with pytest.raises(DownloadError, match="MD5"):
        source.locate(bad, target_root, download=True)
    assert list(target_root.iterdir()) == []


def test_unreachable_download_is_one_clear_error(tmp_path: Path) -> None:
    info = source.subset_info("breastmnist")
    gone = source.SubsetInfo(**{**info.__dict__, "url": (tmp_path / "nowhere.npz").as_uri()})
    with pytest.raises(DownloadError, match="could not download") as err:
        source.locate(gone, tmp_path / "root", download=True)
    assert "MD5" in (err.value.hint or "")
    assert not (tmp_path / "root" / "breastmnist.npz").exists()


def test_read_npz_rejects_files_without_medmnist_keys_and_pickles(tmp_path: Path) -> None:
    np.savez(tmp_path / "x.npz", train_images=np.zeros((1, 28, 28), np.uint8))
    with pytest.raises(DataError, match="missing"):
        source.read_npz(tmp_path / "x.npz")
    (tmp_path / "junk.npz").write_bytes(b"\x00garbage")
    with pytest.raises(DataError, match="cannot read"):
        source.read_npz(tmp_path / "junk.npz")
    keys = {f"{s}_{k}": np.zeros(1) for s in ("train", "val", "test") for k in ("images", "labels")}
    keys["train_labels"] = np.array([{"evil": 1}], dtype=object)
    np.savez(tmp_path / "pickle.npz", **keys)
    with pytest.raises(DataError, match="cannot read"):
        source.read_npz(tmp_path / "pickle.npz")
