"""`dnh db`: look after a hash database: info, verify, compact, delete."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.table import Table

from dnhcli.cli.shared import JsonOpt, emit_json, handle_errors, stdout

DbArg = Annotated[Path, typer.Argument(help="A hash database folder.", file_okay=False)]

app = typer.Typer(name="db", help="Look after a hash database: info, verify, compact, delete.",
                  no_args_is_help=True, add_completion=False, rich_markup_mode="rich")


def _open(db: Path, verify: bool = False) -> Any:
    from dnhcli.stores.hashdb import HashDB

    return HashDB.open(db, verify=verify)


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
        facts = {"db": str(db), "ok": True, "count": database.live, "files": database.info()["files"]}
    _show(facts, json, "verified")


@app.command("compact")
@handle_errors
def compact_command(db: DbArg, json: JsonOpt = False) -> None:
    """Merge the segments into one and erase the data of deleted items from every file."""
    with _open(db) as database:
        before = database.info()
        database.compact()
        after = database.info()
    facts = {"db": str(db), "count": after["count"], "segments_before": before["segments"],
             "segments": after["segments"], "bytes_before": before["bytes"], "bytes": after["bytes"],
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
        facts = {"db": str(db), "deleted": records, "count": database.live}
    if json:
        emit_json(facts)
    else:
        stdout.print(f"Deleted {len(records)} item(s) from {db}; {facts['count']} left. Run "
                     "`dnh db compact` to erase their data from the files.", markup=False)


def _records(database: Any, ids: Any) -> list[dict[str, Any]]:
    """Metadata of ids to delete; an id out of range or deleted already is refused by `delete`."""
    import numpy as np

    valid = ids[(ids >= 0) & (ids < len(database))]
    gone = set(database.deleted_ids().tolist())
    known = {int(i): r for i, r in zip(valid.tolist(), database.metadata(
        np.array([i for i in valid.tolist() if i not in gone], np.int64)))}
    return [known.get(int(i), {}) for i in ids.tolist()]
