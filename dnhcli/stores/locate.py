"""Where a database lives: a folder, or a PostgreSQL URL (never taken as a folder name); and the
one-writer lock of a folder (`flock` on `.lock`, which also holds the writer's pid so that a refused
writer can say who holds it; the kernel drops an flock when its holder's descriptor closes, so a
writer that crashes never leaves the database locked).

Every command's `--db` goes through `location()`; `dnhcli.stores.open_store` and
`create_store` then give the store that lives there. `connect` opens a PostgreSQL URL.
"""

from __future__ import annotations

import fcntl
import os
import re
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from dnhcli.errors import DataError, InputError

SCHEMES = ("postgresql", "postgres")
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*://")
_TABLE = re.compile(r"^[a-z_][a-z0-9_]{0,40}$")
DEFAULT_TABLE = "dnh_codes"


def is_url(location: str | Path) -> bool:
    return isinstance(location, str) and bool(_URL.match(location))


def location(text: str | Path) -> Path | str:
    """A `--db` value: a PostgreSQL URL stays a string, anything else is a folder path; a URL of
    another scheme is refused rather than made into a folder."""
    if isinstance(text, Path):
        return text
    if is_url(text):
        scheme = text.split("://", 1)[0].lower()
        if scheme not in SCHEMES:
            raise InputError(
                f"unsupported database URL scheme {scheme!r} in {redact(text)}",
                hint="give a folder, or postgresql://user@host:port/dbname[?table=NAME]",
            )
        split_url(text)  # checked now, so that a bad URL fails before any work
        return text
    return Path(text)


def split_url(url: str) -> tuple[str, str]:
    """(the connection URL for libpq, the table name) of a dnh PostgreSQL URL."""
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises ValueError on a bad port
    except ValueError as exc:
        raise InputError(
            f"invalid PostgreSQL URL {redact(url)}: {exc}",
            hint="postgresql://user@host:port/dbname[?table=NAME]",
        ) from None
    if not parts.hostname and not parts.path.strip("/"):
        raise InputError(
            f"invalid PostgreSQL URL {redact(url)}: no host and no database",
            hint="postgresql://user@host:port/dbname[?table=NAME]",
        )
    query = parse_qsl(parts.query, keep_blank_values=True)
    table = next((v for k, v in query if k == "table"), DEFAULT_TABLE)
    if not _TABLE.match(table):
        raise InputError(
            f"invalid table name {table!r} in {redact(url)}",
            hint="lower-case letters, digits and _, starting with a letter or _",
        )
    rest = urlencode([(k, v) for k, v in query if k != "table"])
    return urlunsplit((parts.scheme, parts.netloc, parts.path, rest, parts.fragment)), table


def redact(url: str) -> str:
    """The URL without its password, for messages and JSON."""
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
        return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    except ValueError:
        return url.split("://", 1)[0] + "://..."


def shown(where: str | Path) -> str:
    return redact(str(where)) if is_url(where) else str(where)


def connect(url: str) -> Any:
    """A psycopg connection to a dnh PostgreSQL URL; DataError (one line, no password) if it fails."""
    import psycopg

    conninfo, _ = split_url(url)
    try:
        # prepare_threshold=None: every query is planned with its values (a generic plan of the
        # search SQL would not push the distance ORDER BY and LIMIT down to the shards)
        return psycopg.connect(conninfo, connect_timeout=10, prepare_threshold=None)
    except psycopg.Error as exc:
        reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        raise DataError(
            f"cannot connect to PostgreSQL at {redact(url)}: {reason}",
            hint="is the server running and the URL right (user, host, port, database)?",
        ) from None


# ---- the write lock of a folder ----------------------------------------------------------
LOCK_FILE = ".lock"


class DatabaseLockedError(DataError):
    """Another process (or another open HashDB) is writing to the database."""


def acquire_write_lock(folder: Path) -> int:
    """Take the folder's write lock without waiting; its file descriptor, or
    DatabaseLockedError naming the holder's pid."""
    try:
        fd = os.open(folder / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
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
