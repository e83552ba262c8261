"""Writers killed with SIGKILL: at random times (light writer and `dnh hash`) and at each of
the crash points the database code names (`DNH_TEST_CRASH_AT`)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from fault_common import BITS, Tally, check_holds, expected, sizes, start_writer

from dnhcli.stores.hashdb import HashDB
from dnhcli.stores.segments import CRASH_ENV, MANIFEST, is_segment_file, leftover_of_create

APPEND_POINTS = ["mid-codes", "after-codes", "mid-meta", "after-meta", "before-manifest",
                 "mid-manifest", "after-manifest"]
COMPACT_POINTS = ["compact-after-codes", "compact-after-meta", "compact-before-manifest",
                  "compact-mid-manifest", "compact-after-manifest"]
DELETE_POINTS = ["delete-mid-ids", "delete-before-manifest", "delete-mid-manifest",
                 "delete-after-manifest"]
RESTART_EVERY = 10  # trials per database, so that brute force stays small


def fresh_db(path: Path, batches: int) -> None:
    with HashDB.create(path, BITS) as db:
        for b in range(batches):
            db.add(*expected([b]))


def only_referenced(path: Path) -> bool:
    with HashDB.open(path, verify=False) as db:
        names = {e["name"] for e in db.manifest["segments"]}
    return all(not is_segment_file(f) or f.split(".")[0] in names for f in os.listdir(path))


def random_kills(tally: Tally, trials: int, work: Path, rng: np.random.Generator) -> None:
    """The light writer appends batches; it is killed after a random delay. The database must
    hold every acknowledged batch, plus at most the interrupted one, whole."""
    batches, path = 0, work / "kill-db-0"
    for trial in range(trials):
        if trial % RESTART_EVERY == 0:
            batches, path = 0, work / f"kill-db-{trial}"
            fresh_db(path, 0)
        proc = start_writer(path, batches, batches + 200, max_segments=4)
        assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
        time.sleep(float(rng.uniform(0.0, 0.5)))
        proc.send_signal(signal.SIGKILL)
        printed = proc.communicate()[0].split()
        acked = int(printed[-1]) + 1 if printed else batches
        allowed = sizes(acked + 1)
        with HashDB.open(path) as db:
            count = len(db)
        if count < allowed[acked]:
            tally.add("kill at a random time (light writer)", "lost", f"{path}: {count} < {allowed[acked]}")
            return
        if count not in (allowed[acked], allowed[acked + 1]):
            tally.add("kill at a random time (light writer)", "wrong", f"{path}: count {count}")
            return
        batches = acked + int(count == allowed[acked + 1])
        outcome = check_holds(path, *expected(batches), seed=trial)
        tally.add("kill at a random time (light writer)", outcome, str(path))


def crash_points(tally: Tally, work: Path) -> None:
    """Killed at each named point of an append that also compacts (3 -> 4 segments > 3)."""
    for point in APPEND_POINTS + COMPACT_POINTS:
        path = work / f"point-{point}"
        fresh_db(path, 3)
        proc = start_writer(path, 3, 4, max_segments=3, env={CRASH_ENV: point})
        proc.communicate()
        with HashDB.open(path) as db:
            count = len(db)
        committed = count == sizes(4)[4]
        outcome = check_holds(path, *expected(4 if committed else 3), seed=3)
        if point == "after-manifest" and not committed:
            outcome = "lost"  # the commit point was passed: the batch must be there
        with HashDB.open(path) as db:  # the next writer cleans the leftovers and appends
            db.max_segments = 3
            db.add(*expected([4 if committed else 3]))
        if outcome == "consistent" and not (only_referenced(path) and check_holds(
                path, *expected(5 if committed else 4), seed=4) == "consistent"):
            outcome = "wrong"
        tally.add("kill at each crash point (append, compaction)", outcome, point)


def _run_killed(path: Path, code: str, point: str) -> None:
    subprocess.run([sys.executable, "-c", f"from dnhcli.stores.hashdb import HashDB\n{code}"],
                   env={**os.environ, CRASH_ENV: point}, capture_output=True, timeout=300)


def _live_state(path: Path, codes: np.ndarray, meta: list[dict[str, object]]) -> tuple[list[int], bool]:
    """The deleted ids, and whether every other item reads back as written and is found by
    search (deleted ones never are)."""
    with HashDB.open(path) as db:
        deleted = db.deleted_ids().tolist()
        live = db.live_ids()
        stored = [{k: v for k, v in m.items() if k != "id"} for m in db.metadata(live)]
        ok = (np.array_equal(db.codes()[live], codes[live]) and stored == [meta[i] for i in live]
              and not set(deleted) & set(db.search(codes[:8], len(codes))[1].ravel().tolist()))
    return deleted, ok


def delete_points(tally: Tally, work: Path) -> None:
    """A delete killed at each of its crash points, and a purging compaction killed at each of
    the compaction's: the items are deleted whole or not at all, the others are untouched,
    and a committed compaction leaves none of the deleted items' bytes in any file."""
    codes, meta = expected(3)
    victims = [0, 5, len(codes) - 1]
    for point in DELETE_POINTS + COMPACT_POINTS:
        path = work / f"delete-{point}"
        fresh_db(path, 3)
        compaction = point.startswith("compact-")
        if compaction:
            with HashDB.open(path) as db:
                db.delete(victims)
            _run_killed(path, f"HashDB.open({str(path)!r}).compact()", point)
        else:
            _run_killed(path, f"HashDB.open({str(path)!r}).delete({victims})", point)
        deleted, ok = _live_state(path, codes, meta)
        outcome = "consistent" if ok and deleted in ([], victims) else "wrong"
        if point == "delete-after-manifest" and deleted != victims:
            outcome = "lost"  # the commit point was passed: the deletion must be there
        if compaction and outcome == "consistent":
            # a compaction killed after its commit leaves its old files unreferenced (never read);
            # the next writer removes them
            with HashDB.open(path) as db:
                named = {e["name"] for e in db.manifest["segments"]}
            data = b"".join(f.read_bytes() for f in path.iterdir() if f.name.split(".")[0] in named)
            committed = "compact-after-manifest" == point
            left = [f'"{meta[v]["source"]}"'.encode() in data for v in victims]
            if committed and any(left):
                outcome = "wrong"
            with HashDB.open(path) as db:  # the next writer finishes the erasure
                db.compact()
            data = b"".join(f.read_bytes() for f in path.iterdir() if f.is_file())
            if any(f'"{meta[v]["source"]}"'.encode() in data for v in victims):
                outcome = "wrong"
        tally.add("kill at each crash point (delete, purging compaction)", outcome, point)


def dnh_hash_kills(tally: Tally, trials: int, work: Path, model: Path, rng: np.random.Generator) -> None:
    """`dnh hash --chunk 16` (one crash-safe append per 16 images, compactions on the way)
    killed at a random moment after it started writing; a fresh database per trial, so the
    create can be interrupted too. The result must be a whole-chunk prefix of an uninterrupted
    run's database."""
    images = np.random.default_rng(5).integers(0, 256, (640, 28, 28), dtype=np.uint8)
    npy = work / "hash input.npy"
    np.save(npy, images)
    command = [sys.executable, "-m", "dnhcli", "hash", "--model", str(model), "--chunk", "16", str(npy),
               "--db"]
    reference = work / "hash-reference"
    began = time.perf_counter()
    subprocess.run([*command, str(reference)], check=True, capture_output=True)
    with HashDB.open(reference) as db:
        ref_codes, ref_meta = db.codes(), [{k: v for k, v in m.items() if k != "id"}
                                          for m in db.metadata(np.arange(len(db)))]
    window = time.perf_counter() - began
    for trial in range(trials):
        path = work / f"hash-kill-{trial}"
        proc = subprocess.Popen([*command, str(path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        while proc.poll() is None and not (path / MANIFEST).exists():
            time.sleep(0.002)
        time.sleep(float(rng.uniform(0.0, min(window, 1.5))))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        if not (path / MANIFEST).exists():  # killed while creating: only leftovers, create works
            clean = all(leftover_of_create(f) for f in os.listdir(path)) if path.exists() else True
            if clean:
                HashDB.create(path, 16).close()
            tally.add("kill during `dnh hash` (create + appends)", "consistent" if clean else "wrong",
                      str(path))
            continue
        with HashDB.open(path) as db:
            count = len(db)
        aligned = count % 16 == 0 or count == len(ref_codes)
        outcome = check_holds(path, ref_codes[:count], ref_meta[:count], seed=trial) if aligned else "wrong"
        tally.add("kill during `dnh hash` (create + appends)", outcome, f"{path}: {count} items")
