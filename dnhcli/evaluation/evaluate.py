"""`evaluate`: hash the query split (and the gallery split, or read a hash database) with a model,
then compute both protocols on the Hamming ranking and on the two-stage one, instance recall under
alterations and the likeness ratio; optionally dump the codes and labels, and plot the figures."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dnhcli.data.dataset import PreparedDataset
from dnhcli.deploy.backends import Backend, load_backend
from dnhcli.errors import DataError, InputError
from dnhcli.evaluation.instance import (
    DEFAULT_INSTANCE_SAMPLE,
    LIKENESS_K,
    check_sample,
    instance_recall,
    likeness_ratio,
    sample_indices,
)
from dnhcli.evaluation.protocol import DEFAULT_KS, TIE_BREAKS, Evaluation, class_ids, evaluate_codes
from dnhcli.evaluation.two_stage import evaluate_two_stage, two_stage_summary
from dnhcli.folders import check_output_folder, staged_folder
from dnhcli.index.codes import codes_from_continuous, mean_tie_size
from dnhcli.index.ranking import asymmetric_rank
from dnhcli.index.rerank import DEFAULT_OVERSAMPLE, check_oversample, quantize_vectors, two_stage_arrays
from dnhcli.index.search import topk
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
    rerank: bool = True  # also the two-stage figures
    oversample: int = DEFAULT_OVERSAMPLE
    instance: bool = True  # instance recall under alterations
    instance_sample: int = DEFAULT_INSTANCE_SAMPLE
    seed: int = 0  # of the instance and likeness samples and of the random alterations


@dataclass
class EvalReport:
    evaluation: Evaluation
    config: dict[str, Any]
    outputs: dict[str, str] = field(default_factory=dict)
    two_stage: dict[str, Any] | None = None
    instance: dict[str, Any] | None = None
    likeness: dict[str, Any] | None = None
    notices: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {**self.evaluation.to_json(), "two_stage": self.two_stage, "instance": self.instance,
                "likeness_ratio": self.likeness, "notices": self.notices, "config": self.config,
                "outputs": self.outputs}


@dataclass(frozen=True)
class Side:
    """Packed codes and (organ, disease) names of one side of the evaluation."""

    codes: np.ndarray
    organs: list[str]
    diseases: list[str]
    h: np.ndarray | None = None
    vectors: np.ndarray | None = None  # int8 re-rank vectors (gallery side)
    images: np.ndarray | None = None  # uint8 pixels in the order of the codes (gallery side)


def _encode(backend: Backend, images: np.ndarray, stage: str, progress: ProgressFn) -> np.ndarray:
    parts = []
    for start in range(0, len(images), ENCODE_CHUNK):
        parts.append(backend.encode(np.asarray(images[start:start + ENCODE_CHUNK])))
        progress(stage, min(start + ENCODE_CHUNK, len(images)), len(images))
    return np.concatenate(parts) if parts else np.zeros((0, backend.bits), np.float32)


def _split_side(dataset: PreparedDataset, split: str, backend: Backend, progress: ProgressFn,
                vectors: bool = False) -> Side:
    data = dataset.split(split)
    h = _encode(backend, data.images, f"hash {split}", progress)
    organ_names = dataset.organ_names
    labels = np.asarray(data.labels)
    organs = [organ_names[o] for o in labels[:, 1].tolist()]
    diseases = [dataset.disease_names(o)[d] for o, d in labels[:, 1:3].tolist()]
    return Side(codes=codes_from_continuous(h), organs=organs, diseases=diseases, h=h,
                vectors=quantize_vectors(h) if vectors else None, images=data.images)


def _db_side(path: Path | str, backend: Backend, dataset: PreparedDataset, vectors: bool,
             notices: list[str]) -> tuple[Side, dict[str, Any]]:
    """The live items of a database; their re-rank vectors (if asked for and stored) and, when
    every item is an image of the dataset's gallery split, their pixels."""
    with open_store(path) as db:
        db.check_model(backend.bits, backend.fingerprint)
        live = db.live_ids()  # deleted items are not evaluated
        codes = db.codes()[live]
        records = db.metadata(live)
        facts = {"db": shown(path), "db_items": len(live),
                 "db_vectors": bool(getattr(db, "has_vectors", False))}
        stored = None
        if vectors and facts["db_vectors"]:
            stored = db.vectors(live) if len(live) else np.zeros((0, backend.bits), np.int8)
        elif vectors:
            notices.append(f"notice: the hash database {shown(path)} stores no re-rank vectors: the "
                           "two-stage figures are left out (`dnh db upgrade` adds the vectors)")
        images = _db_images(db, live, dataset)
    if images is None:
        notices.append(f"notice: not every item of {shown(path)} is an image of this dataset's gallery "
                       "split: instance recall and the likeness ratio are left out")
    unlabelled = [r["id"] for r in records if not r.get("organ") or r.get("disease") is None]
    if unlabelled:
        raise DataError(f"{len(unlabelled)} items of the hash database {path} have no organ/disease "
                        f"labels (first: id {unlabelled[0]})",
                        hint="evaluate against a database built with `dnh hash --data DIR --split gallery`")
    return Side(codes=codes, organs=[str(r["organ"]) for r in records],
                diseases=[str(r["disease"]) for r in records], vectors=stored, images=images), facts


def _db_images(db: Any, live: np.ndarray, dataset: PreparedDataset) -> np.ndarray | None:
    """Pixels of the live items, found by the keys `dnh hash --data DIR --split gallery` gives
    them; None unless every live item is such an image."""
    find = getattr(db, "find", None)
    if find is None or len(live) == 0:
        return None
    images = dataset.split("gallery").images
    ids = np.asarray(find(dataset.item_keys("gallery")))
    index = np.full(int(max(ids.max(initial=-1), np.max(live, initial=-1))) + 1, -1, np.int64)
    index[ids[ids >= 0]] = np.flatnonzero(ids >= 0)
    wanted = index[live]
    return None if (wanted < 0).any() else np.asarray(images[wanted])


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
    check_oversample(config.oversample)
    check_sample(config.instance_sample)


def evaluate(config: EvalConfig, progress: ProgressFn = no_progress, backend: Backend | None = None
             ) -> EvalReport:
    """Run one evaluation; outputs are checked before any slow work and written atomically.
    `backend` replaces loading `config.model` (e.g. a no-learning baseline with `encode`)."""
    started = time.perf_counter()
    _check_outputs(config)
    if config.threads is not None:
        import torch

        torch.set_num_threads(config.threads)
    backend = backend or load_backend(config.model, config.threads)
    dataset = PreparedDataset.open(config.data)
    query = _split_side(dataset, "query", backend, progress)
    notices: list[str] = []
    if config.db is not None:
        gallery, db_facts = _db_side(config.db, backend, dataset, config.rerank, notices)
    else:
        gallery, db_facts = _split_side(dataset, "gallery", backend, progress, vectors=config.rerank), {}
    qlab, glab, names = label_arrays(query, gallery, dataset)
    organs = list(names)
    evaluation = evaluate_codes(query.codes, gallery.codes, qlab, glab, config.ks, query_h=query.h,
                                tie_break=config.tie_break, radius=config.radius, organ_names=organs,
                                threads=config.threads, progress=progress)
    evaluation.counts["mean_gallery_tie_size"] = round(mean_tie_size(gallery.codes), 3)
    facts = {
        "model": str(config.model), "backend": backend.name, "model_fingerprint": backend.fingerprint,
        "bits": backend.bits, "data": str(config.data), "dataset_fingerprint": dataset.fingerprint,
        "model_trained_on_this_dataset": backend.info.get("dataset_fingerprint") == dataset.fingerprint,
        "gallery": "db" if config.db is not None else "gallery split", **db_facts,
        "queries": len(qlab), "gallery_items": len(glab), "k": list(evaluation.ks),
        "tie_break": config.tie_break, "radius": config.radius, "rerank": config.rerank,
        "oversample": config.oversample, "instance": config.instance,
        "instance_sample": config.instance_sample, "seed": config.seed, "versions": package_versions(),
    }
    report = EvalReport(evaluation=evaluation, config=facts, notices=notices)
    seconds = {"hamming": round(time.perf_counter() - started, 3)}
    if gallery.vectors is not None:
        mark = time.perf_counter()
        two = evaluate_two_stage(query.codes, np.asarray(query.h), gallery.codes, gallery.vectors, qlab, glab,
                                 config.ks, oversample=config.oversample, organ_names=organs,
                                 threads=config.threads, progress=progress)
        report.two_stage = two_stage_summary(two)
        seconds["two_stage"] = round(time.perf_counter() - mark, 3)
    if gallery.images is not None:
        mark = time.perf_counter()
        report.likeness = _likeness(config, query, gallery, gallery.images, qlab, glab)
        if config.instance:
            report.instance = instance_recall(
                lambda images: _encode(backend, images, "hash altered", no_progress), gallery.images,
                gallery.codes, gallery.vectors, sample=config.instance_sample, seed=config.seed,
                oversample=config.oversample, threads=config.threads, progress=progress)
        seconds["instance_and_likeness"] = round(time.perf_counter() - mark, 3)
    if config.dump is not None:
        write_dump(config.dump, query, gallery, qlab, glab, names, facts)
        report.outputs["dump"] = str(config.dump)
    if config.plot is not None:
        from dnhcli.evaluation.plot import write_plot

        write_plot(evaluation, config.plot)
        report.outputs["plot"] = str(config.plot)
    report.config["seconds_by_part"] = seconds
    report.config["seconds"] = round(time.perf_counter() - started, 3)
    return report


def _likeness(config: EvalConfig, query: Side, gallery: Side, pixels: np.ndarray, qlab: np.ndarray,
              glab: np.ndarray) -> dict[str, Any]:
    """The likeness ratio of the Hamming top 10 (ties as --tie-break orders them) and of the
    two-stage top 10, over a seeded sample of the queries."""
    picked = sample_indices(len(query.codes), config.instance_sample, config.seed)
    qclass, gclass, _, _ = class_ids(qlab, glab)
    codes, h = query.codes[picked], np.asarray(query.h)[picked]
    k = min(LIKENESS_K, len(gallery.codes))
    if config.tie_break == "asymmetric":
        ranked = asymmetric_rank(codes, h, gallery.codes, k, np.zeros(len(gallery.codes), np.int64), 1,
                                 config.threads)[0]
    else:
        ranked = topk(codes, gallery.codes, k, config.threads)[1]
    images = np.asarray(np.asarray(query.images)[picked])
    out: dict[str, Any] = {"k": k, "sample": len(picked), "two_stage": None, "hamming": likeness_ratio(
        images, pixels, qclass[picked], gclass, ranked, config.seed)}
    if gallery.vectors is not None:
        ranked = two_stage_arrays(codes, h, gallery.codes, gallery.vectors, k, config.oversample)[2]
        out["two_stage"] = likeness_ratio(images, pixels, qclass[picked], gclass, ranked, config.seed)
    return out


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
