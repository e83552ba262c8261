"""`dnh prepare-data`: MedMNIST subsets, the synthetic set or a folder of one's own images -> a
split dataset."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer
from rich.table import Table

from dnhcli.cli.shared import (
    ForceOpt,
    JsonOpt,
    OutDirOpt,
    SeedOpt,
    handle_errors,
    info,
    run_and_report,
    stdout,
)
from dnhcli.data.defaults import DEFAULT_SUBSETS, ROOT_ENV, SPLITS, SYNTHETIC_PER_CLASS
from dnhcli.errors import InputError

if TYPE_CHECKING:
    from dnhcli.data.prepare import PrepareResult


@handle_errors
def prepare_data(
    out: OutDirOpt,
    subsets: Annotated[Optional[str], typer.Option(
        help=f"Comma-separated MedMNIST 2D subsets. \\[default: {','.join(DEFAULT_SUBSETS)}]",
        show_default=False)] = None,
    root: Annotated[Optional[Path], typer.Option(
        help="MedMNIST root folder holding {flag}.npz. \\[default: ~/.medmnist]",
        envvar=ROOT_ENV, file_okay=False)] = None,
    download: Annotated[bool, typer.Option(
        help="Download missing files from the MedMNIST URLs (MD5 checked).")] = False,
    synthetic: Annotated[bool, typer.Option(
        "--synthetic", help="Use the embedded synthetic set (no files, no network).")] = False,
    synthetic_per_class: Annotated[int, typer.Option(
        help="Images per class of the synthetic set.", min=10)] = SYNTHETIC_PER_CLASS,
    seed: SeedOpt = 0,
    ratios: Annotated[str, typer.Option(help="train:val:gallery:query ratios.")] = "6:1:2:1",
    max_per_class: Annotated[Optional[int], typer.Option(
        help="Keep at most N random images per class (quick runs).", min=1)] = None,
    images: Annotated[Optional[Path], typer.Option(
        "--images", help="A folder of your own images (PNG, JPEG, TIFF, .npy, DICOM; subfolders too), "
                         "keyed as `dnh hash` keys them.", file_okay=False)] = None,
    layout: Annotated[str, typer.Option(
        help="--images labelled by folders: class (DIR/<class>/...), group/class "
             "(DIR/<group>/<class>/...), none, or auto (class when every image lies in a subfolder, "
             "else none).")] = "auto",
    labels: Annotated[Optional[Path], typer.Option(
        "--labels", help="--images labelled by a CSV/TSV table: a path-or-key column, a class column, "
                         "optional group and patient columns.", dir_okay=False)] = None,
    label_columns: Annotated[Optional[str], typer.Option(
        help="The --labels columns, e.g. path=file,class=diagnosis,group=organ,patient=patient_id.")] = None,
    label_tag: Annotated[Optional[str], typer.Option(
        help="--images labelled by DICOM attributes: KEYWORD[,GROUPKEYWORD], e.g. BodyPartExamined.")] = None,
    on_error: Annotated[str, typer.Option(
        help="--images: a file that cannot be read, or has no label, stops the run (stop) or is left "
             "out and listed (skip).")] = "stop",
    force: ForceOpt = False,
    json: JsonOpt = False,
) -> None:
    """Pool MedMNIST subsets into (organ, disease) classes and split them train/val/gallery/query.

    Each subset is one organ group; a class is named Organ_disease (e.g. Breast_malignant).
    The split is stratified by class and seeded: the same seed gives byte-identical files.
    With --images, a patient (DICOM PatientID or a table column) never lies in two splits.
    """
    if synthetic and subsets is not None:
        raise InputError("--synthetic and --subsets exclude each other",
                         hint="drop --subsets to use the synthetic set")
    from dnhcli.data.prepare import PrepareConfig, prepare_dataset
    from dnhcli.data.splits import parse_ratios

    if images is not None:
        if synthetic or subsets is not None:
            raise InputError(f"--images and {'--synthetic' if synthetic else '--subsets'} exclude each other",
                             hint="give one source of images")
        from dnhcli.data.sources.own import ImagesConfig, prepare_images

        own = ImagesConfig(out=out, images=images, layout=layout, labels=labels, label_columns=label_columns,
                           label_tags=tuple(t.strip() for t in (label_tag or "").split(",") if t.strip()),
                           on_error=on_error, seed=seed, ratios=parse_ratios(ratios),
                           max_per_class=max_per_class, force=force)
        run_and_report(json, lambda progress: prepare_images(own, progress), _render)
        return
    given = [flag for flag, value in (("--labels", labels), ("--label-columns", label_columns),
                                      ("--label-tag", label_tag)) if value is not None]
    if given or layout != "auto" or on_error != "stop":
        raise InputError(f"{(given or ['--layout/--on-error'])[0]} applies to --images only",
                         hint="add --images DIR")

    config = PrepareConfig(
        out=out,
        subsets=tuple(s for s in (subsets or ",".join(DEFAULT_SUBSETS)).split(",") if s.strip()),
        root=root,
        download=download,
        synthetic=synthetic,
        synthetic_per_class=synthetic_per_class,
        seed=seed,
        ratios=parse_ratios(ratios),
        max_per_class=max_per_class,
        force=force,
    )
    run_and_report(json, lambda progress: prepare_dataset(config, progress), _render)


def _render(result: PrepareResult) -> None:
    for failure in result.skipped or []:
        info(f"skipped: {failure['error']}")
    if result.skipped is not None:
        patients = result.manifest["patients"]
        info(f"labels: {result.manifest['labels']['source']}; patients known for {patients['known']} "
             f"images, per split: " + ", ".join(f"{s} {n}" for s, n in patients["splits"].items()))
    table = Table(title=f"Prepared dataset: {result.out}")
    table.add_column("class")
    for split in SPLITS:
        table.add_column(split, justify="right")
    table.add_column("total", justify="right", style="bold")
    for row in result.manifest["classes"]:
        table.add_row(row["name"], *(str(row["splits"][s]) for s in SPLITS), str(row["count"]))
    table.add_section()
    table.add_row("all", *(str(result.splits[s]) for s in SPLITS),
                  str(sum(result.splits.values())), style="bold")
    stdout.print(table)
