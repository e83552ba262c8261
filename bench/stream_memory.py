"""Peak memory of `dnh hash` and `dnh search` against the size of their input and `--chunk`:
it should follow the chunk, not the input.

    python bench/stream_memory.py --model runs/bpr-model/best.pt          # --sizes 20000,200000

Each command runs in its own process on a .npy stack of random 28x28 images; its peak
resident set (VmHWM) and its peak anonymous memory (RssAnon, sampled every 10 ms) are read
from /proc. Search runs with --json (results
streamed to /dev/null) against a database made from the first 10,000 images.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def peak_mb(command: list[str]) -> tuple[float, float]:
    """Run `command`; its peak resident memory and its peak anonymous (heap) memory in MB.
    The difference is file pages: the memory-mapped input and database, and the libraries,
    which the kernel can drop at any time."""
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    status, anon, total = Path(f"/proc/{proc.pid}/status"), 0, 0
    while proc.poll() is None:
        try:
            fields = dict(line.split(":", 1) for line in status.read_text().splitlines())
            anon = max(anon, int(fields["RssAnon"].split()[0]))
            total = max(total, int(fields["VmHWM"].split()[0]))
        except (OSError, KeyError, ValueError):
            pass
        time.sleep(0.01)
    if proc.returncode:
        raise SystemExit(f"failed: {' '.join(command)}")
    return total / 1024, anon / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, required=True, help="a dnh checkpoint or encoder.xml")
    parser.add_argument("--sizes", default="20000,200000", help="query/input image counts")
    parser.add_argument("--chunks", default="256,4096", help="--chunk values")
    args = parser.parse_args()
    dnh = [sys.executable, "-m", "dnhcli"]
    print("| command | images | input MB | --chunk | peak RSS MB | peak anonymous MB |")
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory(prefix="dnh-stream-") as scratch:
        work = Path(scratch)
        rng = np.random.default_rng(0)
        db = work / "db"
        for n in (int(s) for s in args.sizes.split(",")):
            images = work / f"images-{n}.npy"
            np.save(images, rng.integers(0, 256, (n, 28, 28), dtype=np.uint8))
            if not db.exists():
                np.save(work / "gallery.npy", np.load(images, mmap_mode="r")[:10_000])
                subprocess.run([*dnh, "hash", "--model", str(args.model), "--db", str(db),
                                str(work / "gallery.npy")], check=True, capture_output=True)
            for chunk in (int(c) for c in args.chunks.split(",")):
                runs = {"search": [*dnh, "search", str(images), "--model", str(args.model), "--db",
                                   str(db), "--json", "--chunk", str(chunk)],
                        "hash": [*dnh, "hash", str(images), "--model", str(args.model), "--db",
                                 str(work / f"hash-{n}-{chunk}"), "--json", "--chunk", str(chunk)]}
                for name, command in runs.items():
                    mb = images.stat().st_size / 2**20
                    total, anon = peak_mb(command)
                    row = f"| dnh {name} | {n:,} | {mb:.0f} | {chunk} | {total:.0f} | {anon:.0f} |"
                    print(row, flush=True)


if __name__ == "__main__":
    main()
