"""Output folders written whole: refuse to clobber what is not ours, swap in atomically."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from dnhcli.errors import OutputExistsError
from dnhcli.manifest import fsync_dir, read_json


def check_output_folder(out: Path, force: bool, fmt: str, what: str) -> None:
    """Refuse an output folder that holds anything, unless `force` and its manifest.json says
    it is a dnh `fmt` folder (a `what`, named in the messages)."""
    if out.exists() and not out.is_dir():
        raise OutputExistsError(f"output path exists and is not a folder: {out}")
    if not out.is_dir() or not any(out.iterdir()):
        return
    if not force:
        raise OutputExistsError(f"output folder exists and is not empty: {out}",
                                hint="choose another folder, or pass --force to replace it")
    manifest = out / "manifest.json"
    if not manifest.is_file() or read_json(manifest, f"{what} manifest").get("format") != fmt:
        raise OutputExistsError(f"refusing to replace {out}: it is not a dnh {what}",
                                hint=f"--force only replaces a {what} folder that dnh wrote")


@contextmanager
def staged_folder(out: Path) -> Iterator[Path]:
    """A fresh temporary sibling of `out` to fill; on success it replaces `out` atomically (an
    existing `out` is moved aside first and removed after); on failure it is removed."""
    out = out.absolute()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        yield tmp
        fsync_dir(tmp)
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        if out.exists():
            if any(out.iterdir()):
                os.replace(out, old)
            else:
                out.rmdir()
        os.replace(tmp, out)
        fsync_dir(out.parent)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
