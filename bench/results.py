"""Retrieval results on real data: train, evaluate and write docs/RESULTS.md.

    python bench/results.py [--root ../shared/medmnist] [--out runs/results] [--seeds 0,1,2]
                            [--epochs 100] [--bits 16,32,48,64] [--jobs 2] [--doc docs/RESULTS.md]
    python bench/results.py --synthetic --epochs 3 --seeds 0 --bits 16 --doc /tmp/R.md  # smoke run

Prepares Breast + Pneumonia + Retina (split seed 0, 6:1:2:1; `--split-seeds` adds other splits),
trains every configuration (`dnh train`'s defaults at each bit length, the reference's
hyperparameters, three ablations, and each encoder x objective) for every seed, evaluates query
vs gallery (gallery-order and asymmetric tie break), fits the no-learning baselines (LSH,
PCA + ITQ), and writes the report. The variants marked `all_splits` also run on every other
split seed, so that no choice is tuned to one split. Training runs in child processes,
`--jobs` at a time with one thread each; a run whose folder already holds the same configuration
is not trained again, so the script can be stopped and rerun.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results_report import write_report  # noqa: E402

from dnhcli.data.dataset import PreparedDataset  # noqa: E402
from dnhcli.data.prepare import PrepareConfig, prepare_dataset  # noqa: E402
from dnhcli.deploy.backends import load_backend  # noqa: E402
from dnhcli.evaluation.baselines import fit_baseline  # noqa: E402
from dnhcli.evaluation.protocol import evaluate_codes  # noqa: E402
from dnhcli.index.codes import codes_from_continuous  # noqa: E402
from dnhcli.models.checkpoint import load_checkpoint  # noqa: E402
from dnhcli.training.trainer import Hyperparams, TrainConfig, train  # noqa: E402

KS = (10, 100, 1000)
# Each training child gets one thread of everything: --threads 1 alone left an OpenMP worker
# of torch's libgomp spinning at a barrier (40% of a core each, 3-4x slower runs in parallel).
ONE_THREAD = {**os.environ, **{name: "1" for name in (
    "OMP_NUM_THREADS", "NUMBA_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}}
SUBSETS = ("breast", "pneumonia", "retina")


@dataclass(frozen=True)
class Variant:
    """One row of the report: a name, what it is, and its changes to `dnh train`'s defaults."""

    name: str
    label: str
    changes: tuple[tuple[str, Any], ...] = ()
    all_bits: bool = False  # run at every bit length (else at 48 only)
    all_splits: bool = False  # run on every split seed (else on split seed 0 only)


# The reference's training, whatever dnh's defaults become: every setting spelled out.
REFERENCE_HPARAMS: tuple[tuple[str, Any], ...] = (
    ("arch", "lenet5-dnh"), ("objective", "dnh"), ("epochs", 100),
    ("classes", "organ"), ("lr", 1e-3), ("batch_size", 256), ("class_weight", 1.0), ("alpha1", 0.5),
    ("alpha2", 0.5), ("beta", 0.6), ("gamma", 1.0), ("quantization", 0.0), ("balance", False),
    ("organ_balance", False), ("shift", 0), ("hflip", False), ("lr_schedule", "constant"),
    ("weight_decay", 0.0), ("label_smoothing", 0.0))

# The recipe of the stronger encoders and the centres objective (issue 13): 30 epochs, class-level
# classifier, batch 128, cosine schedule, shifts of up to 2 px and horizontal flips.
RECIPE: tuple[tuple[str, Any], ...] = (
    ("epochs", 30), ("classes", "class"), ("batch_size", 128), ("lr_schedule", "cosine"), ("shift", 2),
    ("hflip", True))

VARIANTS = (
    Variant("dnh", "DNH, `dnh train` defaults", all_bits=True, all_splits=True),
    Variant("reference", "DNH, the reference's hyperparameters (organ classes, no quantization)",
            REFERENCE_HPARAMS),
    Variant("gamma10", "DNH, defaults with gamma 10 (less code collapse)", (("gamma", 10.0),)),
    Variant("class-only", "ablation of the gamma-10 row: classification only (no Cauchy, no discriminator)",
            (("gamma", 10.0), ("alpha1", 0.0), ("alpha2", 0.0), ("beta", 0.0))),
    Variant("cauchy-only", "ablation of the gamma-10 row: Cauchy only (no classification, no discriminator)",
            (("gamma", 10.0), ("class_weight", 0.0), ("beta", 0.0))),
    Variant("no-disc", "ablation of the gamma-10 row: no discriminator (beta 0)",
            (("gamma", 10.0), ("beta", 0.0))),
    Variant("bncnn-centres", "BN CNN, hash centres + classification (recipe of issue 13)",
            (("arch", "bncnn"), ("objective", "centres"), *RECIPE), all_splits=True),
    Variant("bncnn-dnh", "BN CNN, DNH objective (same recipe)",
            (("arch", "bncnn"), ("objective", "dnh"), *RECIPE)),
    Variant("lenet-centres", "LeNet-5, hash centres + classification (same recipe)",
            (("arch", "lenet5-dnh"), ("objective", "centres"), *RECIPE)),
)


def hparams_for(variant: Variant, bits: int, seed: int, epochs: int | None) -> Hyperparams:
    """The variant's hyperparameters; `epochs` (the --epochs option) overrides every variant's."""
    changes = dict(variant.changes)
    unknown = set(changes) - set(asdict(Hyperparams()))
    if unknown:
        raise SystemExit(f"variant {variant.name}: dnh train has no hyperparameter "
                         f"{', '.join(sorted(unknown))}")
    if epochs is not None:
        changes["epochs"] = epochs
    return replace(Hyperparams(), bits=bits, seed=seed, **changes)


def _train_one(spec: str) -> None:
    """Child process: train one run from its JSON spec."""
    job = json.loads(spec)
    hp = Hyperparams(**job["hparams"])
    train(TrainConfig(data=Path(job["data"]), out=Path(job["out"]), hparams=hp, threads=1, force=True,
                      val_every=job["val_every"]))
    (Path(job["out"]) / "run.json").write_text(json.dumps(job, indent=1, sort_keys=True))


def _needs_training(job: dict[str, Any]) -> bool:
    out = Path(job["out"])
    done = out / "run.json"
    return not ((out / "best.pt").is_file() and done.is_file() and json.loads(done.read_text()) == job)


def _run_training(jobs: list[dict[str, Any]], parallel: int) -> int:
    """Train the jobs not done before, `parallel` at a time; returns how many were trained."""
    todo = [job for job in jobs if _needs_training(job)]
    print(f"{len(jobs) - len(todo)} runs done before, {len(todo)} to train", flush=True)

    def work(job: dict[str, Any]) -> None:
        started = time.perf_counter()
        log = Path(job["out"]).with_suffix(".log")
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "w") as handle:
            subprocess.run([sys.executable, __file__, "--train-one", json.dumps(job)], check=True,
                           stdout=handle, stderr=subprocess.STDOUT, env=ONE_THREAD)
        print(f"  trained {Path(job['out']).name} in {time.perf_counter() - started:.0f} s", flush=True)

    with ThreadPoolExecutor(max_workers=parallel) as pool:
        list(pool.map(work, todo))
    return len(todo)


def _labels(split: Any) -> np.ndarray:
    return np.asarray(split.labels)[:, 1:3].astype(np.int64)


def _evaluate(qh: np.ndarray, gh: np.ndarray, query: Any, gallery: Any, organs: list[str]
              ) -> dict[str, Any]:
    qc, gc = codes_from_continuous(qh), codes_from_continuous(gh)
    out = {}
    for tie in ("gallery-order", "asymmetric"):
        out[tie] = evaluate_codes(qc, gc, _labels(query), _labels(gallery), KS, query_h=qh,
                                  tie_break=tie, organ_names=organs).to_json()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", default="../shared/medmnist")
    parser.add_argument("--synthetic", action="store_true",
                        help="the embedded synthetic set (smoke runs)")
    parser.add_argument("--out", default="runs/results")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--epochs", type=int, help="every variant's epochs (default: each its own)")
    parser.add_argument("--split-seeds", default="0,1", help="split seeds; 0 first (the main one)")
    parser.add_argument("--bits", default="16,32,48,64")
    parser.add_argument("--main-bits", type=int, default=48)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--val-every", type=int, default=5)
    parser.add_argument("--doc", default="docs/RESULTS.md")
    parser.add_argument("--variants", default=",".join(v.name for v in VARIANTS),
                        help="which training configurations to run")
    parser.add_argument("--train-one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.train_one:
        _train_one(args.train_one)
        return
    started = time.perf_counter()
    out = Path(args.out)
    seeds = [int(s) for s in args.seeds.split(",")]
    bit_lengths = [int(b) for b in args.bits.split(",")]
    split_seeds = [int(s) for s in args.split_seeds.split(",")]
    if split_seeds[0] != 0:
        raise SystemExit("--split-seeds must start with 0, the split of the main tables")
    datasets = {}
    for split in split_seeds:
        data = out / ("data" if split == 0 else f"data-split{split}")
        if not (data / "manifest.json").is_file():
            root = None if args.synthetic else Path(args.root)
            prepare_dataset(PrepareConfig(out=data, synthetic=args.synthetic, root=root, subsets=SUBSETS,
                                          seed=split))
        datasets[split] = PreparedDataset.open(data)
    dataset = datasets[0]
    jobs, rows = [], []
    chosen = [v for v in VARIANTS if v.name in args.variants.split(",")]
    for variant in chosen:
        for split in split_seeds if variant.all_splits else [0]:
            for bits in bit_lengths if variant.all_bits and split == 0 else [args.main_bits]:
                for seed in seeds:
                    hp = hparams_for(variant, bits, seed, args.epochs)
                    name = f"{variant.name}-{bits}b-s{seed}" + (f"-split{split}" if split else "")
                    run = out / "runs" / name
                    jobs.append({"data": str(datasets[split].path.absolute()), "out": str(run.absolute()),
                                 "hparams": asdict(hp), "val_every": args.val_every})
                    rows.append((variant, bits, seed, split, run))
    trained = _run_training(jobs, args.jobs)
    train_split = dataset.split("train")
    organs = dataset.organ_names
    results: list[dict[str, Any]] = []
    for variant, bits, seed, split, run in rows:
        query, gallery = datasets[split].split("query"), datasets[split].split("gallery")
        backend = load_backend(run / "best.pt")
        qh, gh = backend.encode(np.asarray(query.images)), backend.encode(np.asarray(gallery.images))
        figures = _evaluate(qh, gh, query, gallery, organs)
        history = load_checkpoint(run / "last.pt")["history"]
        best = load_checkpoint(run / "best.pt")["history"][-1]
        results.append({"method": variant.name, "label": variant.label, "bits": bits, "seed": seed,
                        "split": split, "epoch": backend.info["epoch"],
                        "train_seconds": round(sum(row["train_seconds"] for row in history), 1),
                        "epochs": len(history), "fragile": best["fragile_fraction"], **figures})
    query, gallery = dataset.split("query"), dataset.split("gallery")
    for name, label in (("lsh", "LSH on pixels (random hyperplanes)"), ("pca-itq", "PCA + ITQ on pixels")):
        for bits in bit_lengths:
            for seed in seeds:
                model = fit_baseline(name, np.asarray(train_split.images), bits, seed)
                qh, gh = model.encode(np.asarray(query.images)), model.encode(np.asarray(gallery.images))
                figures = _evaluate(qh, gh, query, gallery, organs)
                results.append({"method": name, "label": label, "bits": bits, "seed": seed, "split": 0,
                                **figures})
    (out / "results.json").write_text(json.dumps(results, indent=1))
    qlab, glab = _labels(query), _labels(gallery)
    chance = {}
    for index, organ in enumerate(organs):
        mine, theirs = qlab[qlab[:, 0] == index, 1], glab[glab[:, 0] == index, 1]
        if len(mine) and len(theirs):
            chance[organ] = (len(mine) / len(qlab), float(np.mean([(theirs == d).mean() for d in mine])))
    facts = {"data": dataset.manifest, "seeds": seeds, "epochs": args.epochs, "bits": bit_lengths,
             "split_seeds": split_seeds,
             "main_bits": args.main_bits, "synthetic": args.synthetic,
             "minutes": round((time.perf_counter() - started) / 60, 1), "trained": trained,
             "runs": len(jobs), "chance": chance,
             "command": " ".join(["python", "bench/results.py", *sys.argv[1:]]),
             "defaults": asdict(Hyperparams())}
    write_report(Path(args.doc), results, facts)
    print(f"wrote {args.doc} ({facts['minutes']} min)")


if __name__ == "__main__":
    main()
