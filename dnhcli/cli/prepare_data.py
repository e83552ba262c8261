"""`dnh prepare-data`: MedMNIST subsets or the synthetic set -> a split, labelled dataset."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer
from rich.table import Table

from dnhcli.cli.shared import ForceOpt, JsonOpt, OutDirOpt, SeedOpt, handle_errors, run_and_report, stdout
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
    force: ForceOpt = False,
    json: JsonOpt = False,
) -> None:
    """Pool MedMNIST subsets into (organ, disease) classes and split them train/val/gallery/query.

    Each subset is one organ group; a class is named Organ_disease (e.g. Breast_malignant).
    The split is stratified by class and seeded: the same seed gives byte-identical files.
    """
    if synthetic and subsets is not None:
        raise InputError("--synthetic and --subsets exclude each other",
                         hint="drop --subsets to use the synthetic set")
    from dnhcli.data.prepare import PrepareConfig, prepare_dataset
    from dnhcli.data.splits import parse_ratios

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
