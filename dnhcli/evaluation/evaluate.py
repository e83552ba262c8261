"""`evaluate`: hash the query split (and the gallery split, or read a hash database) with a model,
then compute both protocols; optionally dump the codes and labels, and plot the figures."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dnhcli.data.dataset import PreparedDataset
from dnhcli.deploy.backends import Backend, load_backend
from dnhcli.errors import DataError, InputError
from dnhcli.evaluation.protocol import DEFAULT_KS, TIE_BREAKS, Evaluation, evaluate_codes
from dnhcli.folders import check_output_folder, staged_folder
from dnhcli.index.codes import codes_from_continuous
from dnhcli.manifest import package_versions, write_json
from dnhcli.progress import ProgressFn, no_progress
from dnhcli.stores import open_store
from dnhcli.stores.locate import shown

DUMP_FORMAT = "dnh-eval-dump"
DUMP_VERSION = 1
ENCODE_CHUNK = 8192


@dataclass(frozen=True)
class EvalConfig:
    """Query split of `data` against its gallery split, or against the hash database `db`."""

    model: Path
    data: Path
    db: Path | str | None = None  # a folder, or a postgresql:// URL
    ks: tuple[int, ...] = DEFAULT_KS
    tie_break: str = "gallery-order"
    radius: int = 2
    threads: int | None = None
    dump: Path | None = None
    plot: Path | None = None
    force: bool = False


@dataclass
class EvalReport:
    evaluation: Evaluation
    config: dict[str, Any]
    outputs: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {**self.evaluation.to_json(), "config": self.config, "outputs": self.outputs}


@dataclass(frozen=True)
class Side:
    """Packed codes and (organ, disease) names of one side of the evaluation."""

    codes: np.ndarray
    organs: list[str]
    diseases: list[str]
    h: np.ndarray | None = None


def _encode(backend: Backend, images: np.ndarray, stage: str, progress: ProgressFn) -> np.ndarray:
    parts = []
    for start in range(0, len(images), ENCODE_CHUNK):
        parts.append(backend.encode(np.asarray(images[start:start + ENCODE_CHUNK])))
        progress(stage, min(start + ENCODE_CHUNK, len(images)), len(images))
    return np.concatenate(parts) if parts else np.zeros((0, backend.bits), np.float32)


def _split_side(dataset: PreparedDataset, split: str, backend: Backend, progress: ProgressFn) -> Side:
    data = dataset.split(split)
    h = _encode(backend, data.images, f"hash {split}", progress)
    organ_names = dataset.organ_names
    labels = np.asarray(data.labels)
    organs = [organ_names[o] for o in labels[:, 1].tolist()]
    diseases = [dataset.disease_names(o)[d] for o, d in labels[:, 1:3].tolist()]
    return Side(codes=codes_from_continuous(h), organs=organs, diseases=diseases, h=h)


def _db_side(path: Path | str, backend: Backend) -> tuple[Side, dict[str, Any]]:
    with open_store(path) as db:
        db.check_model(backend.bits, backend.fingerprint)
        live = db.live_ids()  # deleted items are not evaluated
        codes = db.codes()[live]
        records = db.metadata(live)
        facts = {"db": shown(path), "db_items": len(live)}
    unlabelled = [r["id"] for r in records if not r.get("organ") or r.get("disease") is None]
    if unlabelled:
        raise DataError(f"{len(unlabelled)} items of the hash database {path} have no organ/disease "
                        f"labels (first: id {unlabelled[0]})",
                        hint="evaluate against a database built with `dnh hash --data DIR --split gallery`")
    return Side(codes=codes, organs=[str(r["organ"]) for r in records],
                diseases=[str(r["disease"]) for r in records]), facts


def label_arrays(query: Side, gallery: Side, dataset: PreparedDataset
                 ) -> tuple[np.ndarray, np.ndarray, dict[str, list[str]]]:
    """(organ, disease) int labels of both sides from their names, numbered as in the dataset
    (organs and diseases it does not know are numbered after its own), and the name lists."""
    names = {organ: dataset.disease_names(o) for o, organ in enumerate(dataset.organ_names)}

    def encode(side: Side) -> np.ndarray:
        out = np.empty((len(side.organs), 2), np.int64)
        for i, (organ, disease) in enumerate(zip(side.organs, side.diseases)):
            diseases = names.setdefault(organ, [])
            if disease not in diseases:
                diseases.append(disease)
            out[i] = list(names).index(organ), diseases.index(disease)
        return out

    return encode(query), encode(gallery), names


def _check_outputs(config: EvalConfig) -> None:
    if config.tie_break not in TIE_BREAKS:
        raise InputError(f"--tie-break must be one of {', '.join(TIE_BREAKS)}, got {config.tie_break!r}")
    if config.plot is not None:
        if config.plot.suffix.lower() != ".png":
            raise InputError(f"--plot must name a .png file, got {config.plot}")
        if config.plot.exists() and not config.force:
            raise InputError(f"{config.plot} exists", hint="choose another --plot, or pass --force")
    if config.dump is not None:
        check_output_folder(config.dump, config.force, DUMP_FORMAT, "evaluation dump")


def evaluate(config: EvalConfig, progress: ProgressFn = no_progress) -> EvalReport:
    """Run one evaluation; outputs are checked before any slow work and written atomically."""
    started = time.perf_counter()
    _check_outputs(config)
    if config.threads is not None:
        import torch

        torch.set_num_threads(config.threads)
    backend = load_backend(config.model, config.threads)
    dataset = PreparedDataset.open(config.data)
    query = _split_side(dataset, "query", backend, progress)
    if config.db is not None:
        gallery, db_facts = _db_side(config.db, backend)
    else:
        gallery, db_facts = _split_side(dataset, "gallery", backend, progress), {}
    qlab, glab, names = label_arrays(query, gallery, dataset)
    organs = list(names)
    evaluation = evaluate_codes(query.codes, gallery.codes, qlab, glab, config.ks, query_h=query.h,
                                tie_break=config.tie_break, radius=config.radius, organ_names=organs,
                                threads=config.threads, progress=progress)
    facts = {
        "model": str(config.model), "backend": backend.name, "model_fingerprint": backend.fingerprint,
        "bits": backend.bits, "data": str(config.data), "dataset_fingerprint": dataset.fingerprint,
        "model_trained_on_this_dataset": backend.info.get("dataset_fingerprint") == dataset.fingerprint,
        "gallery": "db" if config.db is not None else "gallery split", **db_facts,
        "queries": len(qlab), "gallery_items": len(glab), "k": list(evaluation.ks),
        "tie_break": config.tie_break, "radius": config.radius, "versions": package_versions(),
    }
    report = EvalReport(evaluation=evaluation, config=facts)
    if config.dump is not None:
        write_dump(config.dump, query, gallery, qlab, glab, names, facts)
        report.outputs["dump"] = str(config.dump)
    if config.plot is not None:
        from dnhcli.evaluation.plot import write_plot

        write_plot(evaluation, config.plot)
        report.outputs["plot"] = str(config.plot)
    report.config["seconds"] = round(time.perf_counter() - started, 3)
    return report


def write_dump(out: Path, query: Side, gallery: Side, qlab: np.ndarray, glab: np.ndarray,
               names: dict[str, list[str]], facts: dict[str, Any]) -> None:
    """The codes and labels behind the figures, for rechecking outside dnh (see EVALUATION.md)."""
    arrays = {"query_codes": query.codes, "gallery_codes": gallery.codes,
              "query_labels": qlab, "gallery_labels": glab}
    with staged_folder(out) as tmp:
        for name, array in arrays.items():
            np.save(tmp / f"{name}.npy", np.ascontiguousarray(array), allow_pickle=False)
        write_json(tmp / "manifest.json", {
            "format": DUMP_FORMAT, "format_version": DUMP_VERSION, "bits": facts["bits"],
            "codes": "packed sign bits, uint8 (N, bits/8), big-endian bit order (numpy.packbits)",
            "label_columns": ["organ", "disease"], "organs": list(names), "diseases": names,
            "model_fingerprint": facts["model_fingerprint"],
            "dataset_fingerprint": facts["dataset_fingerprint"],
            "queries": len(qlab), "gallery": len(glab), "versions": facts["versions"]})
