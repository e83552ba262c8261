"""`dnh db upgrade`: a database written before re-rank vectors -> a new one that stores them.

The old database keeps only codes and metadata, not pixels, so its items are hashed again from
the inputs that built them (files, a dataset split or a PACS, keyed as `dnh hash` keys them) by
the model that built it, into a scratch database; every stored item then gets the vector of its
key, after a check that the code computed again equals the stored one (the same model). The old
database is left as it was: the upgrade writes a new one (`--out`), folder or PostgreSQL.
"""

from __future__ import annotations

import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from dnhcli.deploy.backends import load_backend
from dnhcli.errors import InputError, ModelError
from dnhcli.progress import ProgressFn, no_progress
from dnhcli.retrieval.hashing import HashConfig, hash_into_db
from dnhcli.retrieval.query import stored_model
from dnhcli.stores import copy_store, open_store, store_exists
from dnhcli.stores.locate import shown


def upgrade_store(config: HashConfig, out: Path | str, model: Path | None = None,
                  progress: ProgressFn = no_progress) -> dict[str, Any]:
    """Copy `config.db` into a new database `out` with a re-rank vector per item, made by hashing
    `config`'s inputs again with `model` (by default the encoder the database stores; `config.model`
    is not read)."""
    if store_exists(out):
        raise InputError(f"a hash database already exists at {shown(out)}",
                         hint="upgrade into a new folder or table (?table=NAME)")
    with open_store(config.db) as old:
        if old.has_vectors:
            raise InputError(f"the hash database {shown(config.db)} stores re-rank vectors already",
                             hint="nothing to upgrade; `dnh db copy` copies it")
        old_codes = old.codes()
        live = old.live_ids()
        by_key = {m.get("key"): int(i) for i, m in zip(live.tolist(), old.metadata(live))}
    model = model or stored_model(config.db)
    backend = load_backend(model)
    with tempfile.TemporaryDirectory(prefix="dnh-upgrade-") as scratch:
        fresh = Path(scratch) / "db"
        hash_into_db(replace(config, db=fresh, model=model, on_duplicate="skip"), progress, backend)
        with open_store(fresh) as again:
            fresh_codes = again.codes()

            def vectors_for(records: list[dict[str, Any]]) -> np.ndarray:
                keys = [r.get("key") for r in records]
                if any(k is None for k in keys):
                    raise InputError("an item of the database has no key, so its image cannot be found again",
                                     hint="rebuild the database with `dnh hash`")
                ids = again.find(keys)
                if (ids < 0).any():
                    missing = keys[int(np.argmax(ids < 0))]
                    raise InputError(f"the stored item {missing!r} is not among the inputs given",
                                     hint="give every file, folder, --data split or --source it came from")
                if not np.array_equal(fresh_codes[ids], old_codes[[by_key[k] for k in keys]]):
                    raise ModelError("the inputs hashed again give other codes than the stored ones",
                                     hint="upgrade with the model that built the database (--model)")
                return again.vectors(ids)

            report = copy_store(config.db, out, progress=progress, vectors_for=vectors_for)
    return {**report, "upgraded": True}
