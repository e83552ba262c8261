"""Training-step speed: dnh's epoch vs a bare forward + backward + Adam loop, side by side.

    python bench/train_speed.py --data runs/bpr [--threads 1,2] [--rounds 5] [--json]

Prints images/s of both and their ratio (goal: at least 0.7) for each thread count.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from dnhcli.bench.train_speed import benchmark_training
from dnhcli.data.dataset import PreparedDataset
from dnhcli.training.trainer import Hyperparams


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="a prepared dataset folder")
    parser.add_argument("--threads", default="1,2", help="comma-separated thread counts")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    dataset = PreparedDataset.open(args.data)
    hp = Hyperparams(batch_size=args.batch_size)
    rows = [benchmark_training(dataset, hp, int(t), args.rounds) for t in args.threads.split(",")]
    if args.json:
        print(json.dumps([row.to_json() for row in rows], indent=2))
        return
    print(f"train split: {rows[0].images} images, batch {hp.batch_size}, {args.rounds} rounds (median)")
    print(f"{'threads':>7} {'dnh img/s':>10} {'bare img/s':>11} {'ratio':>6} {'bare, default layout':>21}")
    for row in rows:
        print(f"{row.threads:>7} {row.dnh_images_per_second:>10.0f} {row.bare_images_per_second:>11.0f} "
              f"{row.ratio:>6.2f} {row.bare_default_layout_images_per_second:>21.0f}")


if __name__ == "__main__":
    main()
