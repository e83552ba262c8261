"""MedMNIST v2 source files: subset names, metadata, locating, verifying, downloading, reading.

Metadata comes from `medmnist.INFO`, read from the installed package's `info.py`
as a literal, without importing or running the package: its `__init__` imports
torch and torchvision (and prints to stdout when torchvision is broken, as it is
with CPU-only torch), and `info.py` creates `~/.medmnist` as a side effect.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import importlib.util
import os
import re
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dnhcli.data.defaults import DEFAULT_SUBSETS as DEFAULT_SUBSETS
from dnhcli.data.defaults import ROOT_ENV as ROOT_ENV
from dnhcli.errors import DataError, DownloadError, InputError
from dnhcli.manifest import file_digest
from dnhcli.progress import ProgressFn, no_progress

OFFICIAL_SPLITS = ("train", "val", "test")

# Organ-group names; OCTMNIST is what the reference code called "Retina", while
# RetinaMNIST (fundus photographs) keeps the name Retina.
_GROUP_NAMES = {
    "pathmnist": "Path",
    "chestmnist": "Chest",
    "dermamnist": "Derma",
    "octmnist": "OCT",
    "pneumoniamnist": "Pneumonia",
    "retinamnist": "Retina",
    "breastmnist": "Breast",
    "bloodmnist": "Blood",
    "tissuemnist": "Tissue",
    "organamnist": "OrganA",
    "organcmnist": "OrganC",
    "organsmnist": "OrganS",
}
NO_FINDING = "normal"


@dataclass(frozen=True)
class SubsetInfo:
    """What dnh needs to know about one source subset (MedMNIST or synthetic)."""

    flag: str
    organ: str
    label_names: tuple[str, ...]
    diseases: tuple[str, ...]
    task: str
    channels: int
    license: str
    source: str = "medmnist"
    url: str | None = None
    md5: str | None = None

    @property
    def multilabel(self) -> bool:
        return self.task.startswith("multi-label")

    @property
    def file_name(self) -> str:
        return f"{self.flag}.npz"


@functools.cache
def medmnist_info() -> dict[str, dict[str, Any]]:
    """`medmnist.INFO`, loaded from the installed package without importing it."""
    spec = importlib.util.find_spec("medmnist")
    if spec is None or not spec.submodule_search_locations:
        raise DataError("the medmnist package is not installed", hint="pip install medmnist")
    info_py = Path(next(iter(spec.submodule_search_locations))) / "info.py"
    tree = ast.parse(info_py.read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == "INFO" for t in node.targets):
            return dict(ast.literal_eval(node.value))
    raise DataError(f"cannot find INFO in {info_py}", hint="reinstall medmnist (pip install medmnist)")


def disease_slug(name: str) -> str:
    """A label name as a class-name part: lower case, runs of other characters as '-'."""
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    return f"grade{slug}" if slug.isdigit() else slug


def available_flags() -> list[str]:
    """The 2D MedMNIST flags dnh can prepare."""
    return [flag for flag in medmnist_info() if not flag.endswith("3d")]


def resolve_subset(name: str) -> str:
    """Map a subset name ('breast', 'BreastMNIST', 'breastmnist') to its MedMNIST flag."""
    flag = name.strip().lower()
    if flag and not flag.endswith("mnist"):
        flag += "mnist"
    if flag not in available_flags():
        short = ", ".join(f.removesuffix("mnist") for f in available_flags())
        raise InputError(f"unknown MedMNIST subset {name.strip()!r}", hint=f"choose from: {short}")
    return flag


def subset_info(flag: str) -> SubsetInfo:
    """Metadata of one MedMNIST 2D subset, with dnh's organ and disease names."""
    info = medmnist_info()[flag]
    names = tuple(info["label"][str(i)] for i in range(len(info["label"])))
    multilabel = str(info["task"]).startswith("multi-label")
    diseases = tuple(disease_slug(n) for n in names)
    if multilabel:
        diseases = (NO_FINDING, *diseases)
    return SubsetInfo(
        flag=flag,
        organ=_GROUP_NAMES.get(flag, flag.removesuffix("mnist").capitalize()),
        label_names=names,
        diseases=diseases,
        task=str(info["task"]),
        channels=int(info["n_channels"]),
        license=str(info["license"]),
        url=str(info["url"]),
        md5=str(info["MD5"]),
    )


def default_root() -> Path:
    """The MedMNIST root: `$DNH_MEDMNIST_ROOT`, else `~/.medmnist` (the medmnist default)."""
    env = os.environ.get(ROOT_ENV)
    return Path(env).expanduser() if env else Path.home() / ".medmnist"


def _missing_hint(info: SubsetInfo, target: Path) -> str:
    return (
        f"1) download {info.url} ; 2) check that its MD5 is {info.md5} ; "
        f"3) save it as {target} (or pass --root DIR, or set ${ROOT_ENV}) ; "
        "or let dnh fetch it with --download"
    )


def locate(info: SubsetInfo, root: Path, download: bool = False,
           progress: ProgressFn = no_progress) -> Path:
    """Path of the subset's verified `.npz` under `root`, downloading it if allowed."""
    target = root / info.file_name
    if not target.is_file():
        if not download:
            raise DataError(f"MedMNIST file not found: {target}", hint=_missing_hint(info, target))
        fetch(info, target, progress)
    if info.md5 is not None:
        actual = file_digest(target, "md5")
        if actual != info.md5:
            raise DataError(
                f"MD5 mismatch for {target}: got {actual}, expected {info.md5}",
                hint="the file is damaged or another version: delete it and download it again",
            )
    return target


def fetch(info: SubsetInfo, target: Path, progress: ProgressFn = no_progress) -> None:
    """Download a subset to `target` via a temporary file; the MD5 must match before it lands."""
    if info.url is None:
        raise DownloadError(f"no download address for {info.flag}")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.part-{os.getpid()}")
    digest = hashlib.md5(usedforsecurity=False)
    stage = f"download {info.file_name}"
    try:
        with urllib.request.urlopen(info.url, timeout=60) as response, open(tmp, "wb") as out:
            total = int(response.headers.get("Content-Length") or 0)
            done = 0
            while block := response.read(1 << 20):
                out.write(block)
                digest.update(block)
                done += len(block)
                progress(stage, done, max(total, done))
        if info.md5 is not None and digest.hexdigest() != info.md5:
            raise DownloadError(
                f"downloaded {info.file_name} has MD5 {digest.hexdigest()}, expected {info.md5}",
                hint="try again later, or download it by hand: " + _missing_hint(info, target),
            )
        os.replace(tmp, target)
    except OSError as exc:
        raise DownloadError(
            f"could not download {info.url}: {exc}", hint=_missing_hint(info, target)
        ) from None
    finally:
        tmp.unlink(missing_ok=True)


def read_npz(path: Path) -> dict[str, np.ndarray]:
    """Read the six arrays of a MedMNIST `.npz` (never unpickling anything)."""
    keys = [f"{split}_{kind}" for split in OFFICIAL_SPLITS for kind in ("images", "labels")]
    try:
        with np.load(path, allow_pickle=False) as data:
            missing = [k for k in keys if k not in data.files]
            if missing:
                raise DataError(f"{path} is not a MedMNIST file: missing {', '.join(missing)}")
            return {k: np.asarray(data[k]) for k in keys}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise DataError(f"cannot read {path}: {exc}") from None
