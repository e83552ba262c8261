"""The hash database, in a folder (`hashdb.HashDB`) or in PostgreSQL (`postgres.PostgresStore`),
which answer the same calls; these functions pick the one a `--db` location names."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dnhcli.errors import InputError
from dnhcli.stores.locate import is_url, shown

if TYPE_CHECKING:
    import numpy as np


def store_exists(where: str | Path) -> bool:
    """Whether a database exists at `where` (a file in the folder's place counts, so that
    opening it gives the error)."""
    if is_url(where):
        from dnhcli.stores.postgres import PostgresStore

        return PostgresStore.exists(str(where))
    path = Path(where)
    return (path / "manifest.json").exists() or (path.exists() and not path.is_dir())


def open_store(where: str | Path, verify: bool = True) -> Any:
    """The database at `where`: `HashDB.open` for a folder, `PostgresStore.open` for a URL."""
    if is_url(where):
        from dnhcli.stores.postgres import PostgresStore

        return PostgresStore.open(str(where))
    from dnhcli.stores.hashdb import HashDB

    return HashDB.open(where, verify=verify)


def create_store(
    where: str | Path,
    bits: int,
    model_fingerprint: str | None = None,
    model_info: dict[str, Any] | None = None,
    model_file: Path | None = None,
    vectors: bool = False,
) -> Any:
    """A new, empty database at `where`; with `vectors`, one that stores re-rank vectors."""
    if is_url(where):
        from dnhcli.stores.postgres import PostgresStore

        return PostgresStore.create(str(where), bits, model_fingerprint, model_info, model_file,
                                    vectors=vectors)
    from dnhcli.stores.hashdb import HashDB

    return HashDB.create(where, bits, model_fingerprint, model_info, model_file, vectors=vectors)


def copy_store(src: str | Path, dst: str | Path, chunk: int = 20_000,
               progress: Callable[[str, int, int], None] | None = None,
               vectors_for: Callable[[list[dict[str, Any]]], np.ndarray] | None = None
               ) -> dict[str, Any]:
    """Copy every live item of `src` (codes, keys, metadata, re-rank vectors, in id order) and its
    model into a new database at `dst`, folder or PostgreSQL, in appends of `chunk` items. Ids are
    given anew, densely: a source with deletions gets new ids (keys stay the way to name an item).
    `vectors_for(records)` gives the vectors of a source that stores none (an upgrade)."""
    if store_exists(dst):
        raise InputError(f"a hash database already exists at {shown(dst)}",
                         hint="copy into a new folder or table (?table=NAME)")
    with open_store(src) as source:
        live = source.live_ids()
        codes = source.codes()
        vectors = source.has_vectors or vectors_for is not None
        target = create_store(dst, source.bits, source.model_fingerprint, source.model_info,
                              source.model_path, vectors=vectors)
        with target:
            for start in range(0, len(live), chunk):
                ids = live[start : start + chunk]
                records = [{k: v for k, v in meta.items() if k != "id"} for meta in source.metadata(ids)]
                added = (source.vectors(ids) if source.has_vectors else
                         vectors_for(records) if vectors_for is not None else None)
                target.add(codes[ids], records, added)
                if progress is not None:
                    progress("copy items", start + len(ids), len(live))
            return {"src": shown(src), "dst": shown(dst), "count": target.live, "bits": target.bits,
                    "rerank": target.has_vectors,
                    "renumbered": bool(len(live)) and int(live[-1]) != len(live) - 1}
