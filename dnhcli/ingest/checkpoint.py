"""`--checkpoint FILE`: where the last complete run from an Orthanc server got to, so that a
nightly run lists only the instances received since (Orthanc's change log), not the archive.

The file names the server and the change sequence number read when that run started; it is
written only after a run that stored every instance it listed (none skipped as unreadable),
so an instance that failed is listed again the next night.
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path

from dnhcli.errors import InputError

FORMAT = "dnh-ingest-checkpoint/1"


def read_checkpoint(path: Path, server: str) -> int | None:
    """The change sequence number recorded for `server`, or None where there is no file yet."""
    if not path.exists():
        return None
    try:
        facts = json.loads(path.read_text())
        if facts.get("format") != FORMAT:
            raise ValueError(facts.get("format"))
        change = int(facts["orthanc_change"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        raise InputError(f"{path}: not a dnh ingest checkpoint",
                         hint="give a new file name, or delete it to list the whole server again") from None
    if facts.get("server") != server:
        raise InputError(f"{path} is the checkpoint of {facts.get('server')}, not of {server}",
                         hint="keep one checkpoint file per server")
    return change


def write_checkpoint(path: Path, server: str, change: int) -> None:
    """Record `change` for `server`, atomically (a crash leaves the old file or the new one)."""
    facts = {"format": FORMAT, "server": server, "orthanc_change": change,
             "written": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(facts, indent=1) + "\n")
    os.replace(temporary, path)
