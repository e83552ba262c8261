"""`dnh hash`: images -> K-bit codes in a hash database (created on first use)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from dnhcli.cli.shared import DbOpt, JsonOpt, ModelOpt, handle_errors, run_and_report, stdout
from dnhcli.data.defaults import CHUNK

if TYPE_CHECKING:
    from dnhcli.retrieval.hashing import HashResult


@handle_errors
def hash_command(
    model: ModelOpt,
    db: DbOpt,
    inputs: Annotated[Optional[list[Path]], typer.Argument(
        help="Images of any size: PNG, JPEG, BMP, TIFF, DICOM, .npy (one image or a stack), or "
             "folders of them.",
        show_default=False)] = None,
    data: Annotated[Optional[Path], typer.Option(
        "--data", "-d", help="Hash a split of this prepared dataset instead (keeps organ and "
                             "disease).", file_okay=False)] = None,
    split: Annotated[Optional[str], typer.Option(
        help="The split to hash with --data. [default: gallery]", show_default=False)] = None,
    source: Annotated[Optional[str], typer.Option(
        "--source", help="Hash the DICOM instances of a PACS instead: orthanc+http://host:port "
                         "(only the instances not stored yet are downloaded).")] = None,
    chunk: Annotated[int, typer.Option(
        help="Images read, hashed and appended at a time: each chunk is one crash-safe append, "
             "and memory grows with it, not with the input.", min=1)] = CHUNK,
    on_duplicate: Annotated[str, typer.Option(
        help="An image whose key is stored already: skip it, replace the stored item (deleted, "
             "then added anew), or error (refuse the run before anything is written).")] = "skip",
    json: JsonOpt = False,
) -> None:
    """Hash images with a model and append their codes and metadata to a database.

    The database is created for the model on first use; later runs append, and refuse a
    model whose bits or weights differ. Every image gets a stable key (its DICOM
    SOPInstanceUID, or its path under the given folder and its content's sha256), so a rerun
    on a grown folder adds only the new images. Inputs are all checked before the database
    is touched; an interrupted run keeps the chunks it finished.
    """
    from dnhcli.retrieval.hashing import HashConfig, hash_into_db
    from dnhcli.stores.locate import location

    config = HashConfig(model=model, db=location(db), inputs=tuple(inputs or ()), source=source, data=data,
                        split=split, chunk=chunk, on_duplicate=on_duplicate)
    run_and_report(json, lambda progress: hash_into_db(config, progress), _render)


def _render(result: HashResult) -> None:
    verb = "Created" if result.created else "Appended to"
    skipped = f", skipped {result.skipped} stored already" if result.skipped else ""
    skipped += f", replaced {result.replaced}" if result.replaced else ""
    stdout.print(f"{verb} {result.db}: added {result.added} codes of {result.bits} bits{skipped}; "
                 f"{result.count} in all.", markup=False, highlight=False)
