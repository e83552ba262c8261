"""`dnh hash`: images -> K-bit codes in a hash database (created on first use)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from dnhcli.cli.shared import DbOpt, JsonOpt, ModelOpt, handle_errors, run_and_report, stderr, stdout
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
        help="The split to hash with --data. \\[default: gallery]", show_default=False)] = None,
    source: Annotated[Optional[str], typer.Option(
        "--source", help="Hash the DICOM instances of a PACS instead: orthanc+http://host:port, or "
                         "dicomweb+http://host:port/path (only the instances not stored yet are "
                         "downloaded).")] = None,
    since: Annotated[Optional[datetime], typer.Option(
        help="With --source: only the instances Orthanc received since this time (UTC), or for "
             "DICOMweb the studies dated since this day.", show_default=False)] = None,
    checkpoint: Annotated[Optional[Path], typer.Option(
        help="With an Orthanc --source: list only what arrived since the last complete run that "
             "used this file (Orthanc's change log), and record where this run got to.",
        dir_okay=False, show_default=False)] = None,
    engine: Annotated[str, typer.Option(
        help="local: decode and hash in this process. ray: a Ray actor pool of --workers "
             "encoders (a local Ray, or the cluster at --address), one writer.")] = "local",
    workers: Annotated[int, typer.Option(help="Ray workers (--engine ray).", min=1)] = 2,
    threads: Annotated[int, typer.Option(help="Encoder threads per Ray worker.", min=1)] = 1,
    address: Annotated[Optional[str], typer.Option(
        help="Join this Ray cluster (auto, or ray://host:10001) instead of starting Ray here.",
        show_default=False)] = None,
    on_error: Annotated[Optional[str], typer.Option(
        help="An image that cannot be read: stop the run, or skip it and report it (--json "
             "`failed_keys`, and the --failure-log). \\[default: skip with --source or --engine "
             "ray, else stop]", show_default=False)] = None,
    failure_log: Annotated[Optional[Path], typer.Option(
        help="Where skipped images are described, one JSON line each. \\[default: "
             "dnh-hash-failures-<time>.jsonl here, written only if one fails]",
        dir_okay=False, show_default=False)] = None,
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
    from dnhcli.ingest.decode import keep_freed_memory
    from dnhcli.retrieval.hashing import HashConfig, hash_into_db
    from dnhcli.stores.locate import location

    keep_freed_memory()
    config = HashConfig(model=model, db=location(db), inputs=tuple(inputs or ()), source=source, data=data,
                        split=split, chunk=chunk, on_duplicate=on_duplicate, engine=engine, workers=workers,
                        threads=threads, address=address, on_error=on_error, failure_log=failure_log,
                        since=since, checkpoint=checkpoint)
    run_and_report(json, lambda progress: hash_into_db(config, progress), _render)


def _render(result: HashResult) -> None:
    verb = "Created" if result.created else "Appended to"
    skipped = f", skipped {result.skipped} stored already" if result.skipped else ""
    skipped += f", replaced {result.replaced}" if result.replaced else ""
    stdout.print(f"{verb} {result.db}: added {result.added} codes of {result.bits} bits{skipped}; "
                 f"{result.count} in all.", markup=False, highlight=False)
    if result.failed:
        stderr.print(f"warning: {result.failed} images could not be read and were skipped (each in "
                     f"{result.failure_log}); a re-run tries them again.", markup=False, highlight=False)
