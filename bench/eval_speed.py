"""Evaluation speed and memory: Q queries against N codes, every figure at k = 10, 100, 1000.

    python bench/eval_speed.py [--queries 50000] [--gallery 100000] [--bits 48] [--threads 1,2]
                               [--tie-break gallery-order]

Codes are clustered like trained codes (9 classes in 3 organs, 8% of bits flipped around each
class centre), so ties and cut-offs behave as on real data. Each thread count runs in a fresh
process, so the peak resident memory (ru_maxrss) belongs to that run alone. The goal: 50,000
queries against 100,000 codes in under a minute, in memory that does not grow with the queries.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import numpy as np


def _one(queries: int, gallery: int, bits: int, threads: int, tie_break: str) -> dict[str, float]:
    from dnhcli.evaluation.protocol import evaluate_codes
    from dnhcli.index.codes import pack_codes
    from dnhcli.index.search import warm_up

    warm_up()
    rng = np.random.default_rng(0)
    centres = rng.integers(0, 2, (9, bits)).astype(bool)

    def make(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        labels = rng.integers(0, 9, n)
        signs = centres[labels] ^ (rng.random((n, bits)) < 0.08)
        h = np.where(signs, 1.0, -1.0) * rng.uniform(0.05, 1.0, (n, bits))
        return pack_codes(signs), np.stack([labels // 3, labels % 3], axis=1), h.astype(np.float32)

    qc, ql, qh = make(queries)
    gc, gl, _ = make(gallery)
    evaluate_codes(qc[:64], gc, ql[:64], gl, query_h=qh[:64], tie_break=tie_break, threads=threads)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    result = evaluate_codes(qc, gc, ql, gl, query_h=qh, tie_break=tie_break, threads=threads)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"queries": queries, "gallery": gallery, "bits": bits, "threads": threads,
            "tie_break": tie_break, "seconds": round(seconds, 2),
            "peak_rss_mb": round(peak / 1024, 1), "rss_before_mb": round(before / 1024, 1),
            "strict_map@10": result.to_json()["strict"]["mAP@10"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--queries", type=int, default=50000)
    parser.add_argument("--gallery", type=int, default=100000)
    parser.add_argument("--bits", type=int, default=48)
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--tie-break", default="gallery-order")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # child process: one thread count
    args = parser.parse_args()
    if args.one is not None:
        print(json.dumps(_one(args.queries, args.gallery, args.bits, args.one, args.tie_break)))
        return
    print(f"{'queries':>8} {'gallery':>8} {'bits':>4} {'threads':>7} {'seconds':>8} {'peak MB':>8}"
          "  tie break")
    for threads in (int(t) for t in args.threads.split(",")):
        command = [sys.executable, __file__, "--one", str(threads), "--queries", str(args.queries),
                   "--gallery", str(args.gallery), "--bits", str(args.bits), "--tie-break", args.tie_break]
        child = subprocess.run(command, capture_output=True, text=True, check=True)
        row = json.loads(child.stdout.strip().splitlines()[-1])
        print(f"{row['queries']:>8} {row['gallery']:>8} {row['bits']:>4} {row['threads']:>7} "
              f"{row['seconds']:>8.2f} {row['peak_rss_mb']:>8.1f}  {row['tie_break']}")


if __name__ == "__main__":
    main()
