"""How long `dnh` commands take as whole processes, as a user runs them, beside Python itself.

    python bench/cli_latency.py [--runs 9] [--db-items 2000] [--work DIR] [--json]

Builds a small synthetic dataset, a 48-bit model (1 epoch), its export (encoder.xml and
encoder.onnx) and a hash database in a scratch folder (or --work), then runs every command
below `--runs` times, round-robin, so that a busy machine slows them all alike, and prints the
median, min and max wall time and the peak memory (max RSS) of each, with the goal where the
command has one. `python -c pass` and `python -c "import numpy"` run in the same rounds: they
are the floor any command stands on. Nothing is timed inside a test; figures go to
docs/BENCHMARKS.md with the CPU they came from.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from dnhcli.bench.report import cpu_name

COMMANDS = ("prepare-data", "train", "hash", "search", "evaluate", "export", "benchmark")
HELP_GOAL, SEARCH_GOAL = 0.3, 1.0


def _dnh() -> list[str]:
    script = Path(sys.executable).with_name("dnh")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "dnhcli"]


def _paths(work: Path) -> dict[str, Path]:
    return {"data": work / "data", "best": work / "model" / "best.pt", "xml": work / "export" / "encoder.xml",
            "onnx": work / "export" / "encoder.onnx", "db": work / "db", "query": work / "query.npy",
            "scratch": work / "scratch"}


def _build(work: Path, db_items: int) -> None:
    """A dataset, a model, its export, a database of `db_items` codes and a one-image query.
    Runs in a child process, so that the timed processes do not inherit torch's memory."""
    import numpy as np

    from dnhcli import (
        ExportConfig,
        HashConfig,
        Hyperparams,
        PrepareConfig,
        TrainConfig,
        export_model,
        hash_into_db,
        prepare_dataset,
        train,
    )

    data, model, export, db = work / "data", work / "model", work / "export", work / "db"
    per_class = max(30, -(-db_items * 5 // 8))  # the gallery is 2/10 of 8 synthetic classes
    if not data.exists():
        prepare_dataset(PrepareConfig(out=data, synthetic=True, synthetic_per_class=per_class, seed=0))
    if not (model / "best.pt").exists():
        train(TrainConfig(data=data, out=model, hparams=Hyperparams(epochs=1, seed=0), threads=1))
    if not (export / "encoder.xml").exists():
        export_model(ExportConfig(model=model / "best.pt", out=export, data=data, verify_count=200))
    if not db.exists():
        hash_into_db(HashConfig(model=export / "encoder.xml", db=db, data=data, split="gallery"))
    np.save(work / "query.npy", np.load(data / "query_images.npy")[:1])


def _cases(paths: dict[str, Path]) -> list[tuple[str, list[str], float | None]]:
    """(name, argv, goal in seconds or None)."""
    dnh, py = _dnh(), sys.executable
    q, db = str(paths["query"]), str(paths["db"])
    cases: list[tuple[str, list[str], float | None]] = [
        ("python -c pass", [py, "-c", "pass"], None),
        ('python -c "import numpy"', [py, "-c", "import numpy"], None),
        ("dnh --version", [*dnh, "--version"], HELP_GOAL),
        ("dnh --help", [*dnh, "--help"], HELP_GOAL),
        *((f"dnh {c} --help", [*dnh, c, "--help"], HELP_GOAL) for c in COMMANDS),
    ]
    for name, model, goal in (("encoder.xml", paths["xml"], SEARCH_GOAL),
                              ("encoder.onnx", paths["onnx"], SEARCH_GOAL), ("best.pt", paths["best"], None)):
        if name.endswith(".onnx") and not _has("onnxruntime"):
            continue
        cases.append((f"dnh search (1 query, {name})", [*dnh, "search", q, "--db", db, "--model", str(model),
                                                        "--json"], goal))
    cases.append(("dnh hash (1 image, encoder.xml)", [*dnh, "hash", "--model", str(paths["xml"]), "--db",
                                                      str(paths["scratch"]), q, "--json"], SEARCH_GOAL))
    cases.append(("numba kernels, load from cache", [py, "-c", "from dnhcli.index import search, ranking; "
                                                     "search.warm_up(); ranking.warm_up()"], None))
    return cases


def _has(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def _run_once(argv: list[str]) -> tuple[float, float]:
    """(wall seconds, max RSS in MB) of one process."""
    with tempfile.TemporaryFile() as err:  # a file, not a pipe: a chatty child cannot block
        began = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)  # wait4: the child's own peak memory
        wall = time.perf_counter() - began
        proc.returncode = code = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
        if code != 0:
            err.seek(0)
            raise SystemExit(f"{' '.join(argv)} failed ({code}): {err.read().decode().strip()[-500:]}")
    return wall, usage.ru_maxrss / 1024


def measure(paths: dict[str, Path], runs: int) -> list[dict]:
    cases = _cases(paths)
    for _, argv, _ in cases:  # warm the page cache and numba's cache once, untimed
        _run_once(argv)
    walls: dict[str, list[float]] = {name: [] for name, _, _ in cases}
    rss: dict[str, float] = {name: 0.0 for name, _, _ in cases}
    for _ in range(runs):
        for name, argv, _ in cases:
            if name.startswith("dnh hash"):
                shutil.rmtree(paths["scratch"], ignore_errors=True)  # each run creates the database
            wall, mb = _run_once(argv)
            walls[name].append(wall)
            rss[name] = max(rss[name], mb)
    return [{"command": name, "median_s": round(statistics.median(walls[name]), 3),
             "min_s": round(min(walls[name]), 3), "max_s": round(max(walls[name]), 3),
             "max_rss_mb": round(rss[name], 1), "goal_s": goal,
             "met": None if goal is None else statistics.median(walls[name]) <= goal}
            for name, _, goal in cases]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=9, help="timed runs of every command (median)")
    parser.add_argument("--db-items", type=int, default=2000, help="about this many codes in the database")
    parser.add_argument("--work", type=Path, help="keep the model and database here (reused if present)")
    parser.add_argument("--json", action="store_true", help="one JSON document on stdout")
    parser.add_argument("--build-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.build_only:
        _build(args.work, args.db_items)
        return
    with tempfile.TemporaryDirectory(prefix="dnh-cli-latency-") as scratch:
        work = args.work or Path(scratch)
        work.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, __file__, "--build-only", "--work", str(work),
                        "--db-items", str(args.db_items)], check=True)
        paths = _paths(work)
        items = json.loads((paths["db"] / "manifest.json").read_text()).get("count")
        rows = measure(paths, args.runs)
    facts = {"cpu": cpu_name(), "cores": os.cpu_count(), "python": platform.python_version(),
             "runs": args.runs, "db_items": items, "rows": rows}
    if args.json:
        print(json.dumps(facts, indent=2))
        return
    print(f"{facts['cpu']}, {facts['cores']} cores, Python {facts['python']}; median of {args.runs} runs; "
          f"database of {items} codes\n")
    print("| command | median s | min s | max s | max RSS MB | goal s | met |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        met = "" if r["met"] is None else ("yes" if r["met"] else "NO")
        print(f"| `{r['command']}` | {r['median_s']:.3f} | {r['min_s']:.3f} | {r['max_s']:.3f} | "
              f"{r['max_rss_mb']:.0f} | {'' if r['goal_s'] is None else r['goal_s']} | {met} |")


if __name__ == "__main__":
    main()
