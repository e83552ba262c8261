"""Damaged files (truncation, bit flips, junk, deletion), a full disk and two writers at once."""

from __future__ import annotations

import contextlib
import os
import resource
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from fault_common import BITS, Tally, answers, check_holds, expected, queries_for, start_writer
from fault_kill import fresh_db, only_referenced

from dnhcli.errors import DataError, DnhError
from dnhcli.stores.hashdb import HashDB
from dnhcli.stores.segments import OFFSET_DTYPE


def _outcome(path: Path, queries: np.ndarray, pristine: dict[str, Any]) -> str:
    """detected (DnhError on open or read), harmless (same answers) or wrong."""
    try:
        with HashDB.open(path) as db:
            got = answers(db, queries)
    except DnhError:
        return "detected"
    except Exception:  # noqa: BLE001 - an unclear crash is a failure of the guarantee
        return "wrong"
    return "harmless" if got == pristine else "wrong"


def _boundaries(name: str, data: bytes, rng: np.random.Generator) -> set[int]:
    """Offsets to truncate at: the ends, the structure's own boundaries, and random ones."""
    size = len(data)
    cuts = {0, 1, size // 2, max(size - 1, 0)} | set(rng.integers(0, max(size, 1), 5).tolist())
    if name.endswith(".codes"):
        cuts |= set((rng.integers(0, max(size // (BITS // 8), 1), 5) * (BITS // 8)).tolist())
    elif name.endswith(".meta.jsonl"):
        cuts |= {i + 1 for i in rng.choice(np.flatnonzero(np.frombuffer(data, np.uint8) == 10), 5)}
    elif name.endswith(".meta.idx"):
        cuts |= set((rng.integers(0, max(size // OFFSET_DTYPE.itemsize, 1), 5) * 8).tolist())
    elif name.endswith((".keys", ".ids")):  # 16-byte key entries, 8-byte deleted ids
        cuts |= set((rng.integers(0, max(size // 8, 1), 5) * 8).tolist())
    else:
        cuts |= {i for i, c in enumerate(data) if c in b",:"}  # every field boundary of the JSON
    return {c for c in cuts if c < size}


def damaged_files(tally: Tally, work: Path, rng: np.random.Generator, flips_per_file: int) -> None:
    """A 3-segment database plus leftovers an interrupted writer can leave (which readers
    ignore); every file in turn truncated, bit-flipped, extended with junk or deleted."""
    path = work / "damaged"
    fresh_db(path, 3)
    with HashDB.open(path) as db:  # a key index and a deleted-ids file to damage too
        codes, meta = expected([3])
        db.add(codes, [{**m, "key": f"k{i}"} for i, m in enumerate(meta)])
        db.delete([len(db) - 1])
    (path / "seg-000099.codes").write_bytes(b"\x00" * 60)  # an unreferenced leftover
    (path / ".manifest.json.tmp-4242").write_bytes(b'{"torn')
    queries = queries_for(expected(3)[0], seed=9)
    with HashDB.open(path) as db:
        pristine = answers(db, queries)
    files = sorted(f for f in os.listdir(path) if f != ".lock")
    for name in files:
        file = path / name
        data = file.read_bytes()
        cuts = sorted(_boundaries(name, data, rng))
        cases: list[tuple[str, bytes | None]] = [("truncation", data[:cut]) for cut in cuts]
        positions = (range(len(data) * 8) if name == "manifest.json" and flips_per_file >= 1000
                     else rng.integers(0, len(data) * 8, flips_per_file).tolist() if data else [])
        for bit in positions:  # every bit of the manifest in the full run
            flipped = bytearray(data)
            flipped[bit // 8] ^= 1 << (bit % 8)
            cases.append(("single bit flip", bytes(flipped)))
        cases += [("junk appended", data + b"\x00junk\n"), ("file deleted", None)]
        for kind, content in cases:
            if content is None:
                file.unlink()
            else:
                file.write_bytes(content)
            tally.add(f"{kind} (every file)", _outcome(path, queries, pristine), f"{name}")
            file.write_bytes(data)


@contextlib.contextmanager
def _file_size_limit(limit: int) -> Iterator[None]:
    """RLIMIT_FSIZE for this process (Python ignores SIGXFSZ: a write past it fails EFBIG)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))


def _full_append(tally: Tally, kind: str, path: Path, batches: int, attempt: Any) -> int:
    """Append the next batch through `attempt`; refused cleanly means unchanged and no
    leftovers; success means one more batch. Returns the batches held."""
    try:
        attempt()
        batches, kind = batches + 1, f"{kind}, append fitted"
    except DataError:
        kind = f"{kind}, append refused"
    except Exception as exc:  # noqa: BLE001
        tally.add(kind, "wrong", f"unclear error {exc!r}")
        return batches
    held = check_holds(path, *expected(batches), seed=batches)
    tally.add(kind, held if only_referenced(path) else "wrong", f"{path}")
    return batches


def full_disk(tally: Tally, work: Path, rng: np.random.Generator, trials: int) -> None:
    """Appends that run out of space, by a file-size limit (any file past the limit fails),
    and on a tiny tmpfs when this process may mount one (root); each must fail with a
    DataError and leave the database exactly as before, or succeed whole."""
    for trial in range(trials):
        path = work / f"fsize-{trial}"
        fresh_db(path, 2)
        limit = int(rng.integers(1, 60_000))
        with HashDB.open(path) as db, _file_size_limit(limit):
            _full_append(tally, "disk full: file-size limit", path, 2, lambda db=db: db.add(*expected([2])))
    mount = work / "tmpfs"
    mount.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=400k", "tmpfs", str(mount)],
                                           capture_output=True).returncode != 0:
        return
    try:
        for trial in range(trials):
            path = mount / f"db-{trial}"
            fresh_db(path, 0)
            batches = 0
            with HashDB.open(path) as db:
                while True:  # append until the disk is full, checking after every append
                    before = batches
                    batches = _full_append(tally, "disk full: tiny tmpfs", path, batches,
                                           lambda db=db, b=batches: db.add(*expected([b])))
                    if batches == before:
                        break
            shutil.rmtree(path)
    finally:
        subprocess.run(["umount", str(mount)], check=False)


def two_writers(tally: Tally, work: Path, rng: np.random.Generator, trials: int) -> None:
    """A second writer started while the first appends: it is refused (exit 3, a
    DatabaseLockedError) or, if the first is done, appends after it; nothing is lost."""
    for trial in range(trials):
        path = work / f"writers-{trial}"
        fresh_db(path, 0)
        first = start_writer(path, 0, 12)
        time.sleep(float(rng.uniform(0.0, 0.3)))
        second = start_writer(path, 500, 501)
        out_first = first.communicate()[0].split()
        second.communicate()
        if first.returncode not in (0, 3) or second.returncode not in (0, 3):
            tally.add("two writers at once", "wrong", f"exit codes {first.returncode}, {second.returncode}")
            continue
        held = [int(b) for b in out_first if b.isdigit()]
        how = "one refused" if 3 in (first.returncode, second.returncode) else "one after the other"
        if second.returncode == 0:  # order: whichever committed first
            with HashDB.open(path) as db:
                second_first = db.metadata([0])[0]["source"].startswith("batch500/")
            held = [500, *held] if second_first else [*held, 500]
        tally.add(f"two writers at once: {how}", check_holds(path, *expected(held), seed=trial), str(path))


def dnh_hash_full_and_locked(tally: Tally, work: Path, model: Path) -> None:
    """`dnh hash` against a full disk and against a held lock: exit 1, one line, unchanged."""
    images = work / "few.npy"
    np.save(images, np.random.default_rng(1).integers(0, 256, (50, 28, 28), dtype=np.uint8))
    path = work / "cli-db"
    command = [sys.executable, "-m", "dnhcli", "hash", "--model", str(model), "--db", str(path), str(images)]
    subprocess.run(command, check=True, capture_output=True)
    with HashDB.open(path) as db:
        codes = db.codes()
        meta = [{k: v for k, v in m.items() if k != "id"} for m in db.metadata(range(len(db)))]

    def limited() -> None:
        soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
        resource.setrlimit(resource.RLIMIT_FSIZE, (200, hard))

    more = work / "more.npy"  # new images: a rerun on `few.npy` would skip them all (stored)
    np.save(more, np.random.default_rng(2).integers(0, 256, (50, 28, 28), dtype=np.uint8))
    command = [*command[:-1], str(more)]
    for kind, kwargs in (("disk full: `dnh hash`", {"preexec_fn": limited}), ("locked: `dnh hash`", {})):
        lock = None
        if kind.startswith("locked"):
            lock = HashDB.open(path)
            nothing = np.zeros((0, 8 * codes.shape[1]), np.int8) if lock.has_vectors else None
            lock.add(np.zeros((0, codes.shape[1]), np.uint8), vectors=nothing)  # the write lock, no item
        done = subprocess.run(command, capture_output=True, text=True, **kwargs)
        if lock is not None:
            lock.close()
        lines = done.stderr.strip().splitlines()
        clean = done.returncode == 1 and len(lines) == 1 and "Traceback" not in done.stderr
        held = check_holds(path, codes, meta, seed=1)
        tally.add(kind, held if clean else "wrong", f"exit {done.returncode}: {done.stderr.strip()[:200]}")
