"""Search speed: dnh's exact Hamming top-k vs FAISS IndexBinaryFlat, side by side in one run.

    python bench/search_speed.py [--sizes 1000000,10000000] [--bits 48] [--queries 1,1000]
                                 [--k 10,100] [--threads 1,2] [--rounds 3] [--radius 2] [--json]

FAISS runs on the same codes and on the codes padded to 64 bits; distances are checked to be
identical. Prints milliseconds, ns per code per query and the ratios FAISS / dnh (goal: >= 1).
Needs faiss-cpu (pip install faiss-cpu), an optional dependency of the benchmark only.
"""

from __future__ import annotations

import argparse
import json
import sys

from dnhcli.bench.search_speed import SearchSpeed, benchmark_search
from dnhcli.errors import DnhError
from dnhcli.index.codes import validate_bits


def _ints(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part]


def _line(row: SearchSpeed) -> str:
    return (f"{row.kind:>5} {row.n:>9} {row.queries:>5} {row.k:>4} {row.threads:>3} {row.dnh_ms:>10.2f} "
            f"{row.faiss_ms:>10.2f} {row.faiss64_ms:>10.2f} {row.ns_per_code(row.dnh_ms):>8.3f} "
            f"{row.ns_per_code(row.faiss_ms):>8.3f} {row.ns_per_code(row.faiss64_ms):>8.3f} "
            f"{row.ratio:>7.2f} {row.ratio64:>7.2f} {'yes' if row.distances_equal else 'NO':>5}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000000,10000000", help="comma-separated database sizes")
    parser.add_argument("--bits", type=int, default=48)
    parser.add_argument("--queries", default="1,1000", help="comma-separated query counts")
    parser.add_argument("--k", default="10,100", help="comma-separated k")
    parser.add_argument("--threads", default="1,2", help="comma-separated thread counts")
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds (median) after a warm-up")
    parser.add_argument("--radius", type=int, default=2, help="range-search radius; -1 skips the row")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    header = (f"{'kind':>5} {'N':>9} {'Q':>5} {'k/r':>4} {'thr':>3} {'dnh ms':>10} {'faiss ms':>10} "
              f"{'faiss64 ms':>10} {'dnh ns':>8} {'faiss ns':>8} {'f64 ns':>8} {'f/dnh':>7} {'f64/dnh':>7} "
              f"{'equal':>5}")
    try:
        validate_bits(args.bits)
        if not args.json:
            print(f"random {args.bits}-bit codes, seed {args.seed}; median of {args.rounds} rounds; "
                  "ns = per stored code per query; f64 = FAISS on codes padded to 64 bits")
            print(header)
        rows = benchmark_search(_ints(args.sizes), args.bits, _ints(args.queries), _ints(args.k),
                                _ints(args.threads), args.rounds, args.seed,
                                None if args.radius < 0 else args.radius,
                                progress=None if args.json else lambda row: print(_line(row), flush=True))
    except DnhError as exc:
        sys.exit(f"error: {exc}")
    if args.json:
        print(json.dumps([row.to_json() for row in rows], indent=2))


if __name__ == "__main__":
    main()
