"""Likeness search on real data (issue 24): train, evaluate and write the likeness section of
docs/RESULTS.md (between its LIKENESS markers, or appended).

    python bench/likeness_results.py [--root ../shared/medmnist] [--out runs/likeness]
        [--split-seeds 0,1] [--seeds 0,1,2] [--jobs 2] [--instance-sample 500] [--doc docs/RESULTS.md]
    python bench/likeness_results.py --synthetic --seeds 0 --split-seeds 0 --epochs 2 --doc /tmp/L.md

For each split seed, prepares Breast + Pneumonia + Retina (6:1:2:1), trains each variant for each
training seed (`dnh train` in child processes, `--jobs` at a time, one thread each; a run whose
folder holds a finished training is not trained again) and evaluates it in this process with
`dnh evaluate`'s figures: class metrics by Hamming distance and two-stage, per organ, instance
recall under the 11 alterations, distinct codes, mean tie size, likeness ratio. PCA + ITQ on the
pixels is evaluated the same way (its continuous projection serves as the re-rank vector).
Figures are means and sample standard deviations over every (split seed, training seed) run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from dnhcli.data.dataset import PreparedDataset
from dnhcli.data.prepare import PrepareConfig, prepare_dataset
from dnhcli.evaluation.baselines import fit_baseline
from dnhcli.evaluation.evaluate import EvalConfig, evaluate

ONE_THREAD = {**os.environ, **{name: "1" for name in (
    "OMP_NUM_THREADS", "NUMBA_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}}
# name -> (label, extra `dnh train` arguments)
VARIANTS = {
    "default": ("`dnh train` defaults (issue 24: + instance term)", []),
    "previous": ("previous default (no instance term, 30 epochs)",
                 ["--instance-weight", "0", "--epochs", "30"]),
    "reference": ("the reference method (--preset reference)", ["--preset", "reference"]),
}
ORGANS = ("Breast", "Pneumonia", "Retina")
MARK_BEGIN, MARK_END = "<!-- LIKENESS BEGIN -->", "<!-- LIKENESS END -->"


class Baseline:
    """PCA + ITQ as an evaluation backend: `encode` gives its continuous projection."""

    name, fingerprint, input_side = "pca-itq", "pca-itq", 28

    def __init__(self, model: Any) -> None:
        self.model, self.bits, self.info = model, model.bits, {}

    def encode(self, images: np.ndarray) -> np.ndarray:
        h = self.model.encode(images)
        return h / max(float(np.abs(h).max()), 1e-6)  # into (-1, 1) as the int8 vectors expect


def prepare(args: argparse.Namespace, split_seed: int) -> Path:
    out = args.out / f"data-s{split_seed}"
    if not (out / "manifest.json").exists():
        prepare_dataset(PrepareConfig(out=out, root=args.root, subsets=("breast", "pneumonia", "retina"),
                                      seed=split_seed, synthetic=args.synthetic, force=True))
    return out


def train(args: argparse.Namespace, data: Path, out: Path, seed: int, extra: list[str]) -> float:
    """Train one run unless done; its training seconds."""
    summary = out / "train.json"
    if summary.exists():
        return float(json.loads(summary.read_text()).get("seconds", 0.0))
    command = [sys.executable, "-m", "dnhcli", "train", "--data", str(data), "--out", str(out), "--seed",
               str(seed), "--threads", "1", "--force", "--json", *extra]
    if args.epochs:  # a smoke run: every variant's epochs
        command = [c for i, c in enumerate(command) if "--epochs" not in command[max(i - 1, 0):i + 1]]
        command += ["--epochs", str(args.epochs)]
    began = time.perf_counter()
    done = subprocess.run(command, env=ONE_THREAD, capture_output=True, text=True, check=False)
    if done.returncode:
        raise SystemExit(f"training failed: {' '.join(command)}\n{done.stderr[-2000:]}")
    seconds = time.perf_counter() - began
    summary.write_text(json.dumps({"seconds": seconds, "train": json.loads(done.stdout)}))
    return seconds


def figures(report: dict[str, Any], seconds: float) -> dict[str, float]:
    """The flat figures of one run."""
    out: dict[str, float] = {"train_s": seconds}
    for stage, block in (("hamming", report), ("two_stage", report.get("two_stage") or {})):
        if not block:
            continue
        tie = block["tie_aware"]["strict"]
        out[f"{stage}.strict_mAP@10"] = tie["mAP@10"]
        out[f"{stage}.strict_nDCG@10"] = tie["nDCG@10"]
        out[f"{stage}.reference_mAP@10"] = block["tie_aware"]["reference"]["mAP@10"]
        for organ in ORGANS:
            if organ in block["per_organ"]:
                out[f"{stage}.P@10.{organ}"] = block["per_organ"][organ]["strict"]["P@10"]
                out[f"{stage}.mMV@10.{organ}"] = block["per_organ"][organ]["strict"]["mMV@10"]
    for stage in ("hamming", "two_stage"):
        for name, value in ((report.get("instance") or {}).get(stage) or {}).items():
            out[f"{stage}.recall@1.{name}"] = value["recall@1"]
            out[f"{stage}.recall@10.{name}"] = value["recall@10"]
        ratio = ((report.get("likeness_ratio") or {}).get(stage) or {}).get("ratio")
        if ratio is not None:
            out[f"{stage}.likeness"] = ratio
    out["distinct_gallery_codes"] = report["codes"]["distinct_gallery_codes"]
    out["mean_tie_size"] = report["codes"]["mean_gallery_tie_size"]
    return out


def run_eval(args: argparse.Namespace, data: Path, model: Path | None, backend: Any, cache: Path) -> dict:
    if cache.exists():
        return json.loads(cache.read_text())
    config = EvalConfig(model=model or Path("pca-itq"), data=data, ks=(10, 100, 1000), threads=1,
                        instance_sample=args.instance_sample)
    report = evaluate(config, backend=backend).to_json()
    cache.write_text(json.dumps(report))
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=Path("../shared/medmnist"))
    parser.add_argument("--out", type=Path, default=Path("runs/likeness"))
    parser.add_argument("--split-seeds", default="0,1")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--reduced", default="", help="variants trained on the first split seed and "
                        "the first training seed only (a shorter run; the report says so)")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=0, help="every variant's epochs (smoke runs)")
    parser.add_argument("--instance-sample", type=int, default=500)
    parser.add_argument("--synthetic", action="store_true")
    parser.add_argument("--doc", type=Path, default=Path("docs/RESULTS.md"))
    args = parser.parse_args()
    split_seeds = [int(s) for s in args.split_seeds.split(",")]
    seeds = [int(s) for s in args.seeds.split(",")]
    variants = args.variants.split(",")
    args.out.mkdir(parents=True, exist_ok=True)
    began = time.perf_counter()
    datas = {s: prepare(args, s) for s in split_seeds}
    reduced = set(filter(None, args.reduced.split(",")))
    runs = [(v, s, t) for v in variants for s in split_seeds for t in seeds
            if v not in reduced or (s == split_seeds[0] and t == seeds[0])]
    with ThreadPoolExecutor(args.jobs) as pool:
        seconds = dict(zip(runs, pool.map(lambda r: train(
            args, datas[r[1]], args.out / f"{r[0]}-s{r[1]}-t{r[2]}", r[2], VARIANTS[r[0]][1]), runs)))
    rows: dict[str, list[dict[str, float]]] = {v: [] for v in [*variants, "pca-itq"]}
    for (variant, split, seed), train_s in seconds.items():
        folder = args.out / f"{variant}-s{split}-t{seed}"
        report = run_eval(args, datas[split], folder / "best.pt", None, folder / "eval.json")
        rows[variant].append(figures(report, train_s))
    for split in split_seeds:
        images = np.asarray(PreparedDataset.open(datas[split]).split("train").images)
        backend = Baseline(fit_baseline("pca-itq", images, 48, seed=0))
        report = run_eval(args, datas[split], None, backend, args.out / f"pca-itq-s{split}.json")
        rows["pca-itq"].append(figures(report, 0.0))
    only = f" [split {split_seeds[0]}, seed {seeds[0]} only]"
    labels = {**{v: VARIANTS[v][0] + (only if v in reduced else "") for v in variants},
              "pca-itq": "PCA + ITQ on pixels (no training)"}
    from likeness_report import render

    text = render(rows, labels, split_seeds, seeds, args, time.perf_counter() - began, platform_name())
    write_doc(args.doc, text)
    print(text)


def platform_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"{line.split(':', 1)[1].strip()}, {os.cpu_count()} cores"
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def write_doc(doc: Path, text: str) -> None:
    block = f"{MARK_BEGIN}\n{text}\n{MARK_END}\n"
    old = doc.read_text() if doc.exists() else ""
    if MARK_BEGIN in old and MARK_END in old:
        head, rest = old.split(MARK_BEGIN, 1)
        new = head + block + rest.split(MARK_END, 1)[1].lstrip("\n")
    else:
        new = old + ("\n" if old and not old.endswith("\n") else "") + ("\n" if old else "") + block
    doc.write_text(new)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    main()
