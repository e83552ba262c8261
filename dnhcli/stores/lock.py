"""The one-writer lock of a hash database: `flock` on `.lock` in the folder, which also
holds the writer's pid so that a refused writer can say who holds it.

The kernel drops an flock when its holder's file descriptor closes, so a writer that
crashes or is killed never leaves the database locked.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from dnhcli.errors import DataError
from dnhcli.stores.segments import LOCK


class DatabaseLockedError(DataError):
    """Another process (or another open HashDB) is writing to the database."""


def acquire_write_lock(folder: Path) -> int:
    """Take the folder's write lock without waiting; its file descriptor, or
    DatabaseLockedError naming the holder's pid."""
    try:
        fd = os.open(folder / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise DataError(f"cannot write to hash database {folder}: {exc.strerror}",
                        hint="check the folder's permissions") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
        os.close(fd)
        who = f"process {holder}" if holder.isdigit() else "another process"
        raise DatabaseLockedError(
            f"hash database {folder} is being written by {who}; only one writer at a time",
            hint="wait for that writer to finish (or close the other HashDB), then retry") from None
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
    except OSError:
        pass  # the pid is only a courtesy for a refused writer's message (e.g. a full disk)
    return fd


def release_write_lock(fd: int | None) -> None:
    if fd is not None:
        os.close(fd)
