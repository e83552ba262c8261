"""Move a hash database into PostgreSQL, on one server and sharded over three, and search all
of them: the same answers. Throwaway servers are started on loopback for the run.

    python examples/postgres_demo.py --db runs/demo/hashdb runs/demo/scans/scan-000.png [-k 5]

Every step is a `dnh` command as the README gives it (`dnh db shard add`, `dnh db copy`,
`dnh search --db postgresql://...`). Where PostgreSQL is not installed it says so and stops
with success, so the demo runs anywhere.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path


def dnh(*args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "dnhcli", *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"dnh {' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("queries", type=Path, nargs="+")
    parser.add_argument("--db", type=Path, required=True)
    parser.add_argument("-k", type=int, default=5)
    args = parser.parse_args()
    from dnhcli.bench.pg_servers import MissingPart, PostgresServer

    servers: list[PostgresServer] = []
    try:
        try:
            servers = [PostgresServer() for _ in range(4)]
        except MissingPart as exc:
            print(f"skipped: {exc}")
            return
        single, coordinator = servers[0].database(), servers[0].database()
        for server in servers[1:]:
            dnh("db", "shard", "add", coordinator, server.database())
        for target in (single, coordinator):
            copied = json.loads(dnh("db", "copy", str(args.db), target, "--json"))
            print(f"copied {copied['count']} items to {copied['dst']}")
        answers = {}
        for name, db in (("folder", str(args.db)), ("PostgreSQL", single), ("3 shards", coordinator)):
            found = json.loads(
                dnh("search", *map(str, args.queries), "--db", db, "-k", str(args.k), "--json")
            )
            answers[name] = [
                [(hit["distance"], hit["score"], hit["key"]) for hit in q["results"]]
                for q in found["queries"]
            ]
        for q, query in enumerate(args.queries):
            print(f"{query.name}: " + ", ".join(f"d={d} s={s:.3f}" for d, s, _ in answers["folder"][q]))
        same = answers["folder"] == answers["PostgreSQL"] == answers["3 shards"]
        print(
            "the folder, PostgreSQL and the three shards give the same two-stage answers" if same
            else "ANSWERS DIFFER"
        )
        if not same:
            raise SystemExit(1)
    finally:
        for server in servers:
            server.stop()


if __name__ == "__main__":
    main()
