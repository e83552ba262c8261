"""Your own images, checked on real data (issue 25): the MedMNIST subsets exported as a folder
tree of PNG files and as a CSV table, prepared with `dnh prepare-data --images`, against the
`.npz` path.

    python bench/own_images.py [--root ../shared/medmnist] [--out runs/own-images] [--seed 0]
    python bench/own_images.py --synthetic --out /tmp/own    # a smoke run on the embedded set

Prepares Breast + Pneumonia + Retina from the `.npz` files (the reference dataset), writes each of
its images as a 28 px grey PNG to DIR/<Organ>/<disease>/<split>-<i>.png and a table
(path, class, group) beside it (at run time, never committed), prepares DIR with the same seed by
its folders (`--layout group/class`) and by the table (`--labels`), and compares each with the
reference: the class names, the images per class in each split, and the images of each class
(as a set of pixel digests). Prints the comparison and the seconds of each step; exits 1 on any
difference.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import shutil
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
from PIL import Image

from dnhcli.data.dataset import PreparedDataset
from dnhcli.data.prepare import PrepareConfig, prepare_dataset
from dnhcli.data.sources.own import ImagesConfig, prepare_images
from dnhcli.data.splits import SPLITS

SUBSETS = ("breast", "pneumonia", "retina")


def export(reference: PreparedDataset, folder: Path) -> Path:
    """Every image of `reference` as a PNG under folder/images/<Organ>/<disease>/, and the
    table folder/labels.csv; returns the table's path."""
    images = folder / "images"
    rows = []
    for split in SPLITS:
        data = reference.split(split)
        for i, (pixels, (klass, _, _)) in enumerate(zip(np.asarray(data.images), np.asarray(data.labels))):
            organ, disease = reference.class_names[int(klass)].split("_", 1)
            path = images / organ / disease / f"{split}-{i:05d}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(pixels).save(path)
            rows.append((path.relative_to(images).as_posix(), disease, organ))
    table = folder / "labels.csv"
    with open(table, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(("path", "class", "group"))
        writer.writerows(rows)
    return table


def per_class(dataset: PreparedDataset) -> tuple[dict[str, dict[str, int]], dict[str, Counter]]:
    """Images per class in each split, and each class's images as a multiset of pixel digests."""
    counts: dict[str, dict[str, int]] = {}
    digests: dict[str, Counter] = {}
    for split in SPLITS:
        data = dataset.split(split)
        for pixels, (klass, _, _) in zip(np.asarray(data.images), np.asarray(data.labels)):
            name = dataset.class_names[int(klass)]
            counts.setdefault(name, dict.fromkeys(SPLITS, 0))[split] += 1
            digests.setdefault(name, Counter())[hashlib.sha256(pixels.tobytes()).hexdigest()] += 1
    return counts, digests


def compare(name: str, reference: PreparedDataset, other: PreparedDataset) -> bool:
    want_counts, want_pixels = per_class(reference)
    got_counts, got_pixels = per_class(other)
    same_names = sorted(want_counts) == sorted(got_counts)
    same_counts = want_counts == got_counts
    same_pixels = want_pixels == got_pixels
    print(f"{name}: classes {'equal' if same_names else 'DIFFER'} ({len(got_counts)}), images per class "
          f"and split {'equal' if same_counts else 'DIFFER'}, images of each class "
          f"{'equal' if same_pixels else 'DIFFER'}")
    if not same_counts:
        for klass in sorted(set(want_counts) | set(got_counts)):
            print(f"  {klass}: npz {want_counts.get(klass)} / {name} {got_counts.get(klass)}")
    return same_names and same_counts and same_pixels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=Path("../shared/medmnist"))
    parser.add_argument("--out", type=Path, default=Path("runs/own-images"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--synthetic", action="store_true", help="the embedded synthetic set (smoke runs)")
    parser.add_argument("--per-class", type=int, default=40, help="synthetic images per class")
    args = parser.parse_args()
    shutil.rmtree(args.out, ignore_errors=True)
    seconds = {}
    began = time.perf_counter()
    source = PrepareConfig(out=args.out / "npz", root=None if args.synthetic else args.root, subsets=SUBSETS,
                           seed=args.seed, synthetic=args.synthetic, synthetic_per_class=args.per_class)
    prepare_dataset(source)
    reference = PreparedDataset.open(args.out / "npz")
    seconds["prepare from .npz"] = time.perf_counter() - began
    began = time.perf_counter()
    table = export(reference, args.out / "export")
    seconds["export PNG tree and table"] = time.perf_counter() - began
    ok = True
    for name, config in (
            ("folders", ImagesConfig(out=args.out / "folders", images=args.out / "export" / "images",
                                     layout="group/class", seed=args.seed)),
            ("table", ImagesConfig(out=args.out / "table", images=args.out / "export" / "images",
                                   labels=table, seed=args.seed))):
        began = time.perf_counter()
        prepare_images(config)
        seconds[f"prepare --images ({name})"] = time.perf_counter() - began
        ok &= compare(name, reference, PreparedDataset.open(config.out))
    total = sum(len(reference.split(s)) for s in SPLITS)
    print(f"{total:,} images; " + ", ".join(f"{step} {value:.1f} s" for step, value in seconds.items()))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
