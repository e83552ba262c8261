"""`dnh db`: look after a hash database: info, verify, compact, delete, copy, upgrade, shards."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.table import Table

from dnhcli.cli.shared import JsonOpt, emit_json, handle_errors, run_and_report, stdout

DbArg = Annotated[str, typer.Argument(
    help="A hash database: a folder, or postgresql://user@host:port/dbname[?table=NAME].")]

app = typer.Typer(name="db", help="Look after a hash database: info, verify, compact, delete, copy, upgrade.",
                  no_args_is_help=True, add_completion=False, rich_markup_mode="rich")


def _open(db: str, verify: bool = False) -> Any:
    from dnhcli.stores import open_store
    from dnhcli.stores.locate import location

    return open_store(location(db), verify=verify)


def _shown(db: str) -> str:
    from dnhcli.stores.locate import shown

    return shown(db)


def _show(facts: dict[str, Any], json: bool, title: str) -> None:
    if json:
        emit_json(facts)
        return
    table = Table(title=title, show_header=False)
    for key, value in facts.items():
        if isinstance(value, dict):
            value = ", ".join(f"{k} {v}" for k, v in value.items() if v is not None and k != "classes")
        elif isinstance(value, list):
            value = ", ".join(str(v) for v in value[:10]) + (" ..." if len(value) > 10 else "")
        table.add_row(key, str(value))
    stdout.print(table)


@app.command("info")
@handle_errors
def info_command(db: DbArg, json: JsonOpt = False) -> None:
    """Count (live items), deleted items, bits, the model, dates, segments and size on disk."""
    with _open(db) as database:
        _show(database.info(), json, f"hash database {db}")


@app.command("verify")
@handle_errors
def verify_command(db: DbArg, json: JsonOpt = False) -> None:
    """Check every file of the database (sizes, crc32, structure); exit 1 on damage."""
    with _open(db, verify=True) as database:
        facts = {"db": _shown(db), "ok": True, "count": database.live, "files": database.info().get("files")}
    _show(facts, json, "verified")


@app.command("compact")
@handle_errors
def compact_command(db: DbArg, json: JsonOpt = False) -> None:
    """Merge the segments into one and erase the data of deleted items from every file."""
    with _open(db) as database:
        before = database.info()
        database.compact()
        after = database.info()
    facts = {"db": _shown(db), "count": after["count"], "segments_before": before.get("segments"),
             "segments": after.get("segments"), "bytes_before": before["bytes"], "bytes": after["bytes"],
             "erased": after["deleted"]}
    _show(facts, json, "compacted")


@app.command("delete")
@handle_errors
def delete_command(
    db: DbArg,
    key: Annotated[Optional[list[str]], typer.Option(
        "--key", help="Delete the item stored under this key (repeatable).")] = None,
    id: Annotated[Optional[list[int]], typer.Option(
        "--id", help="Delete the item with this id (repeatable).")] = None,
    source: Annotated[Optional[list[str]], typer.Option(
        "--source", help="Delete every item hashed from this file or source (repeatable; "
                         "scans the metadata).")] = None,
    json: JsonOpt = False,
) -> None:
    """Delete items by key, id or source, at once and all or none.

    From the moment this returns, no search returns them; `dnh db compact` then erases their
    codes, keys and metadata from the files. Every key, id and source must match an item, or
    nothing is deleted."""
    from dnhcli.errors import InputError

    if not (key or id or source):
        raise InputError("nothing to delete", hint="give --key, --id or --source")
    import numpy as np

    with _open(db) as database:
        ids = database.ids_for(keys=key or (), sources=source or ())
        ids = np.union1d(ids, np.asarray(id or [], np.int64)).astype(np.int64)
        records = [{"id": int(i), "key": r.get("key"), "source": r.get("source")}
                   for i, r in zip(ids.tolist(), _records(database, ids))]
        database.delete(ids)
        facts = {"db": _shown(db), "deleted": records, "count": database.live}
    if json:
        emit_json(facts)
    else:
        stdout.print(f"Deleted {len(records)} item(s) from {_shown(db)}; {facts['count']} left. Run "
                     "`dnh db compact` to erase their data from the files.", markup=False)


def _records(database: Any, ids: Any) -> list[dict[str, Any]]:
    """Metadata of ids to delete; an id out of range or deleted already is refused by `delete`."""
    import numpy as np

    valid = ids[(ids >= 0) & (ids < len(database))]
    gone = set(database.deleted_ids().tolist())
    known = {int(i): r for i, r in zip(valid.tolist(), database.metadata(
        np.array([i for i in valid.tolist() if i not in gone], np.int64)))}
    return [known.get(int(i), {}) for i in ids.tolist()]


@app.command("copy")
@handle_errors
def copy_command(
    src: DbArg,
    dst: Annotated[str, typer.Argument(
        help="A new database: a folder, or postgresql://user@host:port/dbname[?table=NAME].")],
    json: JsonOpt = False,
) -> None:
    """Copy a database, folder or PostgreSQL, into a new one of either kind: live items (codes,
    keys, metadata) in id order, and its model. Ids are given anew densely where the source
    has deletions; keys are kept."""
    from dnhcli.stores import copy_store
    from dnhcli.stores.locate import location

    run_and_report(json, lambda progress: _Facts(copy_store(location(src), location(dst), progress=progress)),
                   lambda facts: _show(facts.data, False, "copied"))


@app.command("upgrade")
@handle_errors
def upgrade_command(
    db: DbArg,
    out: Annotated[str, typer.Option(
        "--out", help="The new database (folder or postgresql:// URL); the old one is left as it is.")],
    inputs: Annotated[Optional[list[Path]], typer.Argument(
        help="The image files or folders the database was built from.")] = None,
    model: Annotated[Optional[Path], typer.Option(
        "--model", "-m", help="The model that built it; by default the encoder it stores.",
        dir_okay=False)] = None,
    data: Annotated[Optional[Path], typer.Option(help="Or the prepared dataset it was built from.")] = None,
    split: Annotated[Optional[str], typer.Option(help="The split of --data (default gallery).")] = None,
    source: Annotated[Optional[str], typer.Option(help="Or the PACS it was built from.")] = None,
    json: JsonOpt = False,
) -> None:
    """Copy a database written before re-rank vectors into a new one that stores them (two-stage
    search): its items are hashed again from the inputs that built them and matched by key."""
    from dnhcli.retrieval.hashing import HashConfig
    from dnhcli.retrieval.upgrade import upgrade_store
    from dnhcli.stores.locate import location

    config = HashConfig(model=model or Path("."), db=location(db), inputs=tuple(inputs or ()), data=data,
                        split=split, source=source)
    run_and_report(json, lambda progress: _Facts(upgrade_store(config, location(out), model, progress)),
                   lambda facts: _show(facts.data, False, "upgraded"))


class _Facts:
    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data

    def to_json(self) -> dict[str, Any]:
        return self.data


shard_app = typer.Typer(name="shard", help="Spread a PostgreSQL hash database over several servers.",
                        no_args_is_help=True, add_completion=False)
app.add_typer(shard_app, name="shard")


@shard_app.command("add")
@handle_errors
def shard_add_command(
    db: Annotated[str, typer.Argument(help="The coordinator: postgresql://user@host:port/dbname[?table=NAME].")],
    shard: Annotated[str, typer.Argument(help="A shard server's database: postgresql://user@host:port/dbname.")],
    json: JsonOpt = False,
) -> None:
    """Add a shard to a PostgreSQL database before its first `dnh hash` (once per shard). The
    codes are hash-partitioned by id over the shards through postgres_fdw; the coordinator
    keeps the facts and the model."""
    from dnhcli.errors import InputError
    from dnhcli.stores.locate import is_url, location
    from dnhcli.stores.shards import add_shard

    if not (is_url(location(db)) and is_url(location(shard))):
        raise InputError("shards are PostgreSQL databases: give two postgresql:// URLs")
    _show(add_shard(db, shard), json, "shard added")


@shard_app.command("list")
@handle_errors
def shard_list_command(
    db: Annotated[str, typer.Argument(help="The coordinator: postgresql://user@host:port/dbname[?table=NAME].")],
    json: JsonOpt = False,
) -> None:
    """The shards of a PostgreSQL database, in partition order."""
    from dnhcli.errors import InputError
    from dnhcli.stores.locate import connect, is_url, location, redact, split_url
    from dnhcli.stores.shards import shards_of

    if not is_url(location(db)):
        raise InputError("only PostgreSQL databases have shards: give a postgresql:// URL")
    with connect(db) as conn:
        shards = shards_of(conn, split_url(db)[1])
    facts = {"db": redact(db), "shards": [redact(url) for url in shards]}
    if json:
        emit_json(facts)
    else:
        lines = [f"{n}: {url}" for n, url in enumerate(facts["shards"])]
        stdout.print("\n".join(lines) or "no shards: one server", markup=False)
