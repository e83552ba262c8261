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
from dnhcli.data.defaults import SYNTHETIC_PER_CLASS  # noqa: E402
from dnhcli.data.prepare import PrepareConfig, prepare_dataset  # noqa: E402
from dnhcli.deploy.backends import load_backend  # noqa: E402
from dnhcli.evaluation.baselines import fit_baseline  # noqa: E402
from dnhcli.evaluation.protocol import evaluate_codes  # noqa: E402
from dnhcli.index.codes import codes_from_continuous  # noqa: E402
from dnhcli.models.checkpoint import load_checkpoint  # noqa: E402
from dnhcli.training.config import PRESETS  # noqa: E402
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
    study: bool = False  # a one-seed study of an option: the first training seed only


# The reference method and dnh's defaults before issue 13 (the reference plus a 0.1 quantization
# term), spelled out so that these rows stay what they are whatever the defaults become.
REFERENCE: tuple[tuple[str, Any], ...] = tuple(PRESETS["reference"].items())
LENET_DNH: tuple[tuple[str, Any], ...] = (*REFERENCE, ("quantization", 0.1))

VARIANTS = (
    Variant("dnh", "`dnh train` defaults: BN CNN, hash centres + classification",
            all_bits=True, all_splits=True),
    Variant("reference", "the reference method (`--preset reference`: LeNet-5, DNH, organ classes, "
            "no quantization)", REFERENCE),
    Variant("lenet-dnh", "LeNet-5, DNH: dnh's defaults before issue 13 (reference + quantization 0.1)",
            LENET_DNH, all_splits=True),
    Variant("gamma10", "LeNet-5, DNH, gamma 10 (less code collapse)", (*LENET_DNH, ("gamma", 10.0))),
    Variant("class-only", "ablation of the gamma-10 row: classification only (no Cauchy, no discriminator)",
            (*LENET_DNH, ("gamma", 10.0), ("alpha1", 0.0), ("alpha2", 0.0), ("beta", 0.0))),
    Variant("cauchy-only", "ablation of the gamma-10 row: Cauchy only (no classification, no discriminator)",
            (*LENET_DNH, ("gamma", 10.0), ("class_weight", 0.0), ("beta", 0.0))),
    Variant("no-disc", "ablation of the gamma-10 row: no discriminator (beta 0)",
            (*LENET_DNH, ("gamma", 10.0), ("beta", 0.0))),
    Variant("bncnn-dnh", "BN CNN, DNH objective (the defaults' recipe)", (("objective", "dnh"),)),
    Variant("lenet-centres", "LeNet-5, hash centres + classification (the defaults' recipe)",
            (("arch", "lenet5-dnh"),)),
    # one option at a time on top of the defaults, one seed each (docs/RESULTS.md, last table)
    Variant("resnet18", "ResNet-18 encoder, 10 epochs (30 do not fit the budget of a default)",
            (("arch", "resnet18"), ("epochs", 10)), study=True),
    Variant("ordinal", "graded centres for Retina (`--ordinal`)", (("ordinal", True),), study=True),
    Variant("balance", "class-balanced centre loss (`--balance`)", (("balance", True),), study=True),
    Variant("organ-sampling", "organ-balanced sampling (`--sampling organ`)", (("sampling", "organ"),),
            study=True),
    Variant("class-sampling", "class-balanced sampling (`--sampling class`)", (("sampling", "class"),),
            study=True),
    Variant("logit-adjust", "logit adjustment tau 1 (`--logit-adjust 1`)", (("logit_adjust", 1.0),),
            study=True),
    Variant("quantization", "quantization weight 0.1 (`--quantization 0.1`, the weight before)",
            (("quantization", 0.1),), study=True),
)
# Relative cost of an epoch per architecture: the longest runs start first.
ARCH_COST = {"resnet18": 12.0, "bncnn": 1.0, "lenet5-dnh": 0.25}


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
    todo = sorted((job for job in jobs if _needs_training(job)),
                  key=lambda job: -ARCH_COST.get(job["hparams"]["arch"], 1.0) * job["hparams"]["epochs"])
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


def _flip_mean(backend: Any, images: np.ndarray) -> np.ndarray:
    return (backend.encode(images) + backend.encode(np.ascontiguousarray(images[:, :, ::-1]))) / 2


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
    parser.add_argument("--synthetic-per-class", type=int, default=SYNTHETIC_PER_CLASS,
                        help="images per class of the synthetic set")
    parser.add_argument("--out", default="runs/results")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--epochs", type=int, help="every variant's epochs (default: each its own)")
    parser.add_argument("--split-seeds", default="0,1", help="split seeds; 0 first (the main one)")
    parser.add_argument("--bits", default="16,32,48,64")
    parser.add_argument("--main-bits", type=int, default=48)
    parser.add_argument("--bit-seeds", type=int, default=1,
                        help="training seeds at the bit lengths other than --main-bits (the first N)")
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
    names = args.variants.split(",")
    unknown = sorted(set(names) - {v.name for v in VARIANTS})
    if unknown:
        raise SystemExit(f"unknown variant {', '.join(unknown)}; "
                         f"known: {', '.join(v.name for v in VARIANTS)}")
    chosen = [v for v in VARIANTS if v.name in names]
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
                                          seed=split, synthetic_per_class=args.synthetic_per_class))
        datasets[split] = PreparedDataset.open(data)
    dataset = datasets[0]
    jobs, rows = [], []
    for variant in chosen:
        for split in split_seeds if variant.all_splits else [0]:
            for bits in bit_lengths if variant.all_bits and split == 0 else [args.main_bits]:
                chosen_seeds = seeds[:1] if variant.study else (
                    seeds if bits == args.main_bits else seeds[:args.bit_seeds])
                for seed in chosen_seeds:
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
                        "epochs": len(history), "fragile": best["fragile_fraction"],
                        "study": variant.study, **figures})
        if variant.name == "dnh" and bits == args.main_bits and seed == seeds[0] and split == 0:
            # test-time flip averaging: the mean of the codes of an image and its mirror image
            qf, gf = (_flip_mean(backend, np.asarray(s.images)) for s in (query, gallery))
            results.append({**results[-1], "method": "flip-mean", "study": True,
                            "label": "flip averaging at test time (the defaults' model)",
                            "fragile": None, **_evaluate(qf, gf, query, gallery, organs)})
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
             "runs": len(jobs), "chance": chance, "bit_seeds": args.bit_seeds,
             "command": " ".join(["python", "bench/results.py", *sys.argv[1:]]),
             "defaults": asdict(Hyperparams())}
    write_report(Path(args.doc), results, facts)
    print(f"wrote {args.doc} ({facts['minutes']} min)")


if __name__ == "__main__":
    main()
