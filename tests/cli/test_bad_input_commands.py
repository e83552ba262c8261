"""Bad-input corpus, part 2: broken prepared datasets (for `train`, `hash --data` and `evaluate`)
and option errors of every command.

Every case must exit 1 or 2 with one clear line and change nothing; `refused` in conftest.py
runs and checks it. Query files and models are in test_bad_input_corpus.py.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest


def resave(folder: Path, name: str, change: Callable[[np.ndarray], Any]) -> None:
    np.save(folder / name, change(np.load(folder / name)))


def organ_99(labels: np.ndarray) -> np.ndarray:
    labels[:, 1] = 99
    return labels


# (ctx, folder, manifest, split): break the split that the command reads
DATASET_EDITS: dict[str, Callable[[Any, Path, dict[str, Any], str], Any]] = {
    "images-other-shape": lambda c, d, m, s: resave(d, f"{s}_images.npy",
                                                    lambda a: np.zeros((len(a), 32, 32), "u1")),
    "images-one-less": lambda c, d, m, s: resave(d, f"{s}_images.npy", lambda a: a[:-1]),
    "images-float": lambda c, d, m, s: resave(d, f"{s}_images.npy", lambda a: a / np.float32(255)),
    "images-object-pickle": lambda c, d, m, s: np.save(
        d / f"{s}_images.npy", np.array([c.trap], dtype=object), allow_pickle=True),
    "labels-missing": lambda c, d, m, s: (d / f"{s}_labels.npy").unlink(),
    "labels-organ-99": lambda c, d, m, s: resave(d, f"{s}_labels.npy", organ_99),
    "manifest-file-shape-edited": lambda c, d, m, s: m["files"][f"{s}_images.npy"].update(shape=[9, 28, 28]),
    "manifest-split-size-edited": lambda c, d, m, s: m["splits"].__setitem__(s, m["splits"][s] + 7),
    "manifest-without-files": lambda c, d, m, s: m.pop("files"),
}
READS = {"train": "train", "hash": "gallery", "evaluate": "query"}


def on_data(command: str, c: Any, data: str, *extra: str) -> list[str]:
    out = str(c.tmp / "out")
    args = {"train": ["train", "--data", data, "--out", out, "--epochs", "1", "--threads", "1"],
            "hash": ["hash", "--model", c.model, "--db", out, "--data", data],
            "evaluate": ["evaluate", "--model", c.model, "--data", data, "--threads", "1"]}[command]
    return args + list(extra)


def manifest_not_json(c: Any) -> str:
    folder = c.dataset()
    c.file("ds/manifest.json", "{not json")
    return str(folder)


BROKEN_FOLDERS: dict[str, Callable[[Any], str]] = {
    "not-a-dataset": lambda c: c.folder("d"),
    "manifest-not-json": manifest_not_json,
    "manifest-other-format": lambda c: c.dataset(lambda d, m: m.update(format="something-else")),
    "missing-folder": lambda c: str(c.tmp / "nowhere"),
    "file-not-folder": lambda c: c.file("data.txt", "x"),
}


def broken(command: str, edit: Callable[[Any, Path, dict[str, Any], str], Any]) -> Callable[[Any], list[str]]:
    """The command on a copy of the dataset whose split that it reads is broken by `edit`."""
    return lambda c: on_data(command, c, c.dataset(lambda d, m: edit(c, d, m, READS[command])))


DATASET_CASES = [pytest.param(broken(cmd, e), id=f"{cmd}-data-{n}")
                 for cmd in READS for n, e in DATASET_EDITS.items()]
DATASET_CASES += [pytest.param(lambda c, cmd=cmd, f=f: on_data(cmd, c, f(c)), id=f"{cmd}-data-{n}")
                  for cmd in READS for n, f in BROKEN_FOLDERS.items()]


def prep(c: Any, *extra: str) -> list[str]:
    return ["prepare-data", "--out", str(c.tmp / "prepared"), *extra]


def train(c: Any, *extra: str) -> list[str]:
    return on_data("train", c, c.data, *extra)


def search(c: Any, *extra: str) -> list[str]:
    return ["search", c.good_npy(), "--model", c.model, "--db", c.db, *extra]


def evaluate(c: Any, *extra: str) -> list[str]:
    return on_data("evaluate", c, c.data, *extra)


def bench(c: Any, *extra: str, batch: str = "1", threads: str = "1") -> list[str]:
    """A benchmark that would be short if it ran by mistake."""
    return ["benchmark", "--model", c.model, "--seconds", "0.01", "--rounds", "1", "--e2e-codes", "0",
            "--batch", batch, "--threads", threads, *extra]


def pacs(c: Any, url: str, *extra: str) -> list[str]:
    return ["hash", "--model", c.model, "--db", str(c.tmp / "newdb"), "--source", url, *extra]


def garbage_last(c: Any) -> list[str]:
    c.file("out/last.pt", "not a checkpoint")
    return train(c, "--resume")


OPTIONS: dict[str, Callable[[Any], list[str]]] = {
    "prepare-data-subsets-nosuch": lambda c: prep(c, "--subsets", "nosuch"),
    "prepare-data-subsets-empty": lambda c: prep(c, "--subsets", ","),
    "prepare-data-subsets-twice": lambda c: prep(c, "--subsets", "breast,breastmnist"),
    "prepare-data-root-missing-offline": lambda c: prep(c, "--subsets", "breast", "--root", "missing-folder"),
    "prepare-data-synthetic-and-subsets": lambda c: prep(c, "--synthetic", "--subsets", "breast"),
    "prepare-data-ratios-three": lambda c: prep(c, "--synthetic", "--ratios", "6:1:2"),
    "prepare-data-ratios-zero": lambda c: prep(c, "--synthetic", "--ratios", "0:0:0:0"),
    "prepare-data-ratios-nan": lambda c: prep(c, "--synthetic", "--ratios", "nan:1:1:1"),
    "prepare-data-per-class-5": lambda c: prep(c, "--synthetic", "--synthetic-per-class", "5"),
    "prepare-data-out-is-file": lambda c: ["prepare-data", "--synthetic", "--out", c.file("o", "x")],
    "prepare-data-force-stranger": lambda c: ["prepare-data", "--synthetic", "--force", "--out", c.folder()],
    "train-bits-7": lambda c: train(c, "--bits", "7"),
    "train-bits-256": lambda c: train(c, "--bits", "256"),
    "train-epochs-0": lambda c: train(c, "--epochs", "0"),
    "train-batch-size-1": lambda c: train(c, "--batch-size", "1"),
    "train-lr-0": lambda c: train(c, "--lr", "0"),
    "train-lr-nan": lambda c: train(c, "--lr", "nan"),
    "train-lr-inf": lambda c: train(c, "--lr", "inf"),
    "train-alpha1-inf": lambda c: train(c, "--alpha1", "inf"),
    "train-classes-nosuch": lambda c: train(c, "--classes", "nosuch"),
    "train-arch-nosuch": lambda c: train(c, "--arch", "resnet999"),
    "train-shift-9": lambda c: train(c, "--shift", "9"),
    "train-label-smoothing-1": lambda c: train(c, "--label-smoothing", "1"),
    "train-resume-nothing": lambda c: train(c, "--resume"),
    "train-resume-garbage-last": garbage_last,
    "train-out-stranger": lambda c: ["train", "--data", c.data, "--out", c.folder(), "--epochs", "1"],
    "train-force-stranger": lambda c: ["train", "--data", c.data, "--out", c.folder(), "--force"],
    "search-k-0": lambda c: search(c, "-k", "0"),
    "search-radius-negative": lambda c: search(c, "--radius", "-1"),
    "search-tie-break-nosuch": lambda c: search(c, "--tie-break", "random"),
    "search-montage-jpg": lambda c: search(c, "--montage", str(c.tmp / "m.jpg")),
    "search-db-not-a-database": lambda c: ["search", c.good_npy(), "--model", c.model, "--db", c.folder()],
    "search-db-missing": lambda c: ["search", c.good_npy(), "--model", c.model, "--db", str(c.tmp / "nodb")],
    "search-db-is-file": lambda c: ["search", c.good_npy(), "--model", c.model, "--db", c.file("db", "x")],
    "search-no-queries": lambda c: ["search", "--model", c.model, "--db", c.db],
    "hash-db-is-file": lambda c: ["hash", c.good_npy(), "--model", c.model, "--db", c.file("db", "x")],
    "hash-db-stranger-folder": lambda c: ["hash", c.good_npy(), "--model", c.model, "--db", c.folder()],
    "hash-nothing": lambda c: ["hash", "--model", c.model, "--db", str(c.tmp / "newdb")],
    "hash-split-without-data": lambda c: ["hash", c.good_npy(), "--model", c.model, "--db", "newdb",
                                          "--split", "query"],
    "hash-data-and-files": lambda c: on_data("hash", c, c.data, c.good_npy()),
    "hash-split-nosuch": lambda c: on_data("hash", c, c.data, "--split", "nosuch"),
    "hash-source-ftp": lambda c: pacs(c, "ftp://127.0.0.1/x"),
    "hash-source-no-host": lambda c: pacs(c, "orthanc+http://"),
    "hash-source-bad-port": lambda c: pacs(c, "orthanc+http://127.0.0.1:99999"),
    "hash-source-unreachable": lambda c: pacs(c, "orthanc+http://127.0.0.1:9"),
    "hash-source-dicomweb-unreachable": lambda c: pacs(c, "dicomweb+http://127.0.0.1:9/dicom-web"),
    "hash-source-and-files": lambda c: pacs(c, "orthanc+http://127.0.0.1:9", c.good_npy()),
    "hash-since-without-source": lambda c: ["hash", c.good_npy(), "--model", c.model, "--db", "newdb",
                                            "--since", "2026-01-01"],
    "hash-since-not-a-date": lambda c: pacs(c, "orthanc+http://127.0.0.1:9", "--since", "yesterday"),
    "hash-checkpoint-dicomweb": lambda c: pacs(c, "dicomweb+http://127.0.0.1:9/d", "--checkpoint", "cp.json"),
    "hash-checkpoint-garbage": lambda c: pacs(c, "orthanc+http://127.0.0.1:9", "--checkpoint",
                                              c.file("cp.json", "{not json")),
    "hash-engine-nosuch": lambda c: ["hash", c.good_npy(), "--model", c.model, "--db", "newdb",
                                     "--engine", "spark"],
    "hash-workers-0": lambda c: ["hash", c.good_npy(), "--model", c.model, "--db", "newdb",
                                 "--engine", "ray", "--workers", "0"],
    "hash-address-local-engine": lambda c: ["hash", c.good_npy(), "--model", c.model, "--db", "newdb",
                                            "--address", "auto"],
    "hash-on-error-nosuch": lambda c: ["hash", c.good_npy(), "--model", c.model, "--db", "newdb",
                                       "--on-error", "ignore"],
    "evaluate-k-abc": lambda c: evaluate(c, "-k", "abc"),
    "evaluate-k-0": lambda c: evaluate(c, "-k", "10,0"),
    "evaluate-k-empty": lambda c: evaluate(c, "-k", ""),
    "evaluate-tie-break-nosuch": lambda c: evaluate(c, "--tie-break", "random"),
    "evaluate-radius-negative": lambda c: evaluate(c, "--radius", "-1"),
    "evaluate-plot-jpg": lambda c: evaluate(c, "--plot", str(c.tmp / "p.jpg")),
    "evaluate-plot-exists": lambda c: evaluate(c, "--plot", c.png(28, "p.png")),
    "evaluate-dump-stranger": lambda c: evaluate(c, "--dump", c.folder(), "--force"),
    "evaluate-db-not-a-database": lambda c: evaluate(c, "--db", c.folder()),
    "export-into-stranger": lambda c: ["export", "--model", c.model, "--out", c.folder()],
    "export-force-stranger": lambda c: ["export", "--model", c.model, "--out", c.folder(), "--force"],
    "export-out-is-file": lambda c: ["export", "--model", c.model, "--out", c.file("o", "x")],
    "export-verify-count-0": lambda c: ["export", "--model", c.model, "--out", "e", "--verify-count", "0"],
    "export-data-not-a-dataset": lambda c: ["export", "--model", c.model, "--out", str(c.tmp / "e"),
                                            "--data", c.folder()],
    "benchmark-device-npu9": lambda c: bench(c, "--device", "NPU9"),
    "benchmark-batch-0": lambda c: bench(c, batch="0"),
    "benchmark-threads-abc": lambda c: bench(c, threads="abc"),
    "benchmark-engines-nosuch": lambda c: bench(c, "--engines", "openvino,tensorrt"),
    "benchmark-engines-without-openvino": lambda c: bench(c, "--engines", "pytorch"),
    "benchmark-precision-fp8": lambda c: bench(c, "--precision", "fp8"),
    "benchmark-seconds-0": lambda c: bench(c, "--seconds", "0"),
    "benchmark-db-not-a-database": lambda c: bench(c, "--db", c.folder()),
    "benchmark-model-missing": lambda c: ["benchmark", "--model", str(c.tmp / "none.xml")],
}
OPTION_CASES = [pytest.param(build, id=name) for name, build in OPTIONS.items()]


@pytest.mark.parametrize("build", DATASET_CASES + OPTION_CASES)
def test_bad_dataset_or_option_is_refused_cleanly(build: Callable[[Any], list[str]],
                                                  refused: Callable[..., None]) -> None:
    refused(build)
