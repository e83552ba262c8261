"""`dnh evaluate`: retrieval figures of a model, query split against gallery split (or a database)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer
from rich.table import Table

from dnhcli.cli.shared import (
    DataOpt,
    ForceOpt,
    JsonOpt,
    ModelOpt,
    ThreadsOpt,
    handle_errors,
    info,
    int_list,
    run_and_report,
    stdout,
)

if TYPE_CHECKING:
    from dnhcli.evaluation.evaluate import EvalReport


@handle_errors
def evaluate_command(
    model: ModelOpt,
    data: DataOpt,
    db: Annotated[Optional[str], typer.Option(
        "--db", help="Rank against this hash database (a folder or a postgresql:// URL) instead of "
                     "the gallery split (its items need organ and disease, as `dnh hash --data` "
                     "stores them).")] = None,
    k: Annotated[str, typer.Option("-k", help="Cut-offs, comma-separated.")] = "10,100,1000",
    tie_break: Annotated[str, typer.Option(
        help="Order inside a Hamming tie: gallery-order (the reference protocol) or asymmetric "
             "(the query's continuous code against the gallery bits).")] = "gallery-order",
    radius: Annotated[int, typer.Option(help="Hamming radius of the P@r figure.", min=0)] = 2,
    plot: Annotated[Optional[Path], typer.Option(
        help="Also draw the PR curve and per-organ bars into this PNG.", dir_okay=False)] = None,
    dump: Annotated[Optional[Path], typer.Option(
        help="Also write the packed codes and labels to this folder, to recheck the figures "
             "outside dnh.", file_okay=False)] = None,
    threads: ThreadsOpt = None,
    force: ForceOpt = False,
    json: JsonOpt = False,
) -> None:
    """Evaluate retrieval: rank the gallery by Hamming distance for every query image.

    Reports the reference protocol (organ relevance), the strict one (organ and disease),
    and the expected figures over random orders of tied codes; see docs/EVALUATION.md.
    """
    from dnhcli.evaluation.evaluate import EvalConfig, evaluate
    from dnhcli.stores.locate import location

    where = location(db) if db is not None else None
    config = EvalConfig(model=model, data=data, db=where, ks=int_list(k, "-k"), tie_break=tie_break,
                        radius=radius, threads=threads, dump=dump, plot=plot, force=force)
    run_and_report(json, lambda progress: evaluate(config, progress), _render)


def _fmt(value: Any, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _render(report: EvalReport) -> None:
    result = report.evaluation.to_json()
    ks = report.evaluation.ks
    table = Table(title=f"Retrieval, {report.config['queries']} queries against "
                        f"{report.config['gallery_items']} items, {report.config['bits']} bits, "
                        f"tie break {report.config['tie_break']}", title_justify="left")
    table.add_column("figure")
    for k in ks:
        table.add_column(f"@{k}", justify="right")
    rows = (("reference mAP (same organ)", "reference", None, "mAP"),
            ("reference nDCG (ideal from top k)", "reference", None, "nDCG"),
            ("strict mAP (same organ + disease)", "strict", None, "mAP"),
            ("standard nDCG (ideal from gallery)", "strict", None, "nDCG"),
            ("strict precision", "strict", None, "P"),
            ("majority vote (class of the top k)", "strict", None, "mMV"),
            ("tie-aware reference mAP", "tie_aware", "reference", "mAP"),
            ("tie-aware strict mAP", "tie_aware", "strict", "mAP"),
            ("tie-aware standard nDCG", "tie_aware", "strict", "nDCG"),
            ("tie-aware strict precision", "tie_aware", "strict", "P"))
    for label, section, sub, name in rows:
        values = result[section][sub] if sub else result[section]
        table.add_row(label, *(_fmt(values.get(f"{name}@{k}")) for k in ks))
    stdout.print(table)
    k, r = ks[0], report.evaluation.radius
    organs = Table(title=f"Per organ, at k = {k} (mAP, nDCG, P: strict; mMV: majority vote; tie P: "
                         "tie-aware strict precision)", title_justify="left")
    for name in ("organ", "queries", "ref mAP", "mAP", "nDCG", "P", "mMV", "tie P", f"P@r{r}"):
        organs.add_column(name, justify="left" if name == "organ" else "right", no_wrap=True)
    for organ, figures in result["per_organ"].items():
        strict, tie = figures["strict"], figures["tie_aware"]["strict"]
        cells = (figures["reference"][f"mAP@{k}"], strict[f"mAP@{k}"], strict[f"nDCG@{k}"],
                 strict[f"P@{k}"], strict[f"mMV@{k}"], tie[f"P@{k}"], strict[f"P@r{r}"])
        organs.add_row(organ, str(figures["queries"]), *(_fmt(v, 3) for v in cells))
    stdout.print(organs)
    codes = result["codes"]
    info(f"{codes['distinct_gallery_codes']} distinct gallery codes; on average "
         f"{codes['mean_gallery_at_distance_0']} gallery items at distance 0 from a query; "
         f"the @{k} cut falls inside a tie for {codes[f'queries_cut_inside_a_tie@{k}']} queries.")
    for name, path in report.outputs.items():
        info(f"{name} written to {path}")
