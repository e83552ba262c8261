"""Fault injection for the hash database: writers killed with SIGKILL, damaged files, a full
disk and two writers at once. Prints a table of trials by outcome (see fault_common.py);
the goal is 0 lost and 0 wrong. Exit code 1 if any trial lost data or gave a wrong answer.

    python bench/faults.py                    # the full run: about 18 min on 2 cores
    python bench/faults.py --quick --json out.json

`--model` is a checkpoint for the `dnh hash` trials (default: a 16-bit model trained for two
epochs on the synthetic set, made in the scratch folder).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from fault_common import OUTCOMES, Tally, writer


def _tiny_model(work: Path) -> Path:
    from dnhcli.data.prepare import PrepareConfig, prepare_dataset
    from dnhcli.training.trainer import Hyperparams, TrainConfig, train

    data = work / "data"
    prepare_dataset(PrepareConfig(out=data, synthetic=True, synthetic_per_class=20, seed=0))
    hp = Hyperparams(epochs=2, batch_size=64, bits=16, seed=0)
    return train(TrainConfig(data=data, out=work / "model", hparams=hp, threads=1)).last


def run(quick: bool, model: Path | None, seed: int) -> Tally:
    from fault_files import damaged_files, dnh_hash_full_and_locked, full_disk, two_writers
    from fault_kill import crash_points, delete_points, dnh_hash_kills, random_kills

    rng = np.random.default_rng(seed)
    tally = Tally()
    with tempfile.TemporaryDirectory(prefix="dnh-faults-") as scratch:
        work = Path(scratch)
        model = model or _tiny_model(work)
        steps = [
            ("kills at random times", lambda: random_kills(tally, 12 if quick else 170, work, rng)),
            ("kills at crash points", lambda: crash_points(tally, work)),
            ("kills during delete and compact", lambda: delete_points(tally, work)),
            ("kills during dnh hash", lambda: dnh_hash_kills(tally, 3 if quick else 200, work, model, rng)),
            ("damaged files", lambda: damaged_files(tally, work, rng, 4 if quick else 2_000)),
            ("full disk", lambda: full_disk(tally, work, rng, 6 if quick else 30)),
            ("two writers", lambda: two_writers(tally, work, rng, 4 if quick else 30)),
            ("dnh hash full and locked", lambda: dnh_hash_full_and_locked(tally, work, model)),
        ]
        for name, step in steps:
            began = time.perf_counter()
            step()
            print(f"{name}: {time.perf_counter() - began:.1f} s", file=sys.stderr, flush=True)
    return tally


def table(tally: Tally) -> str:
    rows = tally.rows()
    lines = ["| fault | trials | " + " | ".join(OUTCOMES) + " |", "|---|" + "---|" * (1 + len(OUTCOMES))]
    for row in rows:
        cells = " | ".join(str(row[o]) for o in OUTCOMES)
        lines.append(f"| {row['fault']} | {row['trials']} | {cells} |")
    totals = {o: sum(r[o] for r in rows) for o in OUTCOMES}
    lines.append(f"| **all** | **{sum(r['trials'] for r in rows)}** | "
                 + " | ".join(f"**{totals[o]}**" for o in OUTCOMES) + " |")
    return "\n".join(lines)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "writer":  # the light writer subprocess
        writer(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]))
        return
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a few trials of each kind (the tests run this)")
    parser.add_argument("--model", type=Path, help="checkpoint for the `dnh hash` trials")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="also write the rows and problems to this file")
    args = parser.parse_args()
    began = time.perf_counter()
    tally = run(args.quick, args.model, args.seed)
    print(table(tally))
    for problem in tally.problems:
        print(f"PROBLEM {problem}")
    print(f"{sum(r['trials'] for r in tally.rows())} trials in {time.perf_counter() - began:.0f} s; "
          f"lost + wrong: {tally.bad()}")
    if args.json:
        args.json.write_text(json.dumps({"rows": tally.rows(), "problems": tally.problems}, indent=2))
    sys.exit(1 if tally.bad() else 0)


if __name__ == "__main__":
    main()
