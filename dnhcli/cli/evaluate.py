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
    rerank: Annotated[bool, typer.Option(
        "--rerank/--no-rerank", help="Also rank by the two-stage search (Hamming candidates re-scored with "
        "the re-rank vectors; with --db, only if the database stores them) and report its figures.")] = True,
    oversample: Annotated[int, typer.Option(
        "--oversample", help="Stage-1 candidates per result of the two-stage search (1-1000).")] = 10,
    instance: Annotated[bool, typer.Option(
        "--instance/--no-instance", help="Also measure instance retrieval: recall@1 and @10 of a "
        "gallery image from altered copies (JPEG, intensity, contrast, shift, rotation, rescale, "
        "noise).")] = True,
    instance_sample: Annotated[int, typer.Option(
        "--instance-sample", help="Gallery images altered for instance retrieval (a seeded sample), and "
        "queries sampled for the likeness ratio.")] = 200,
    threads: ThreadsOpt = None,
    force: ForceOpt = False,
    json: JsonOpt = False,
) -> None:
    """Evaluate retrieval: rank the gallery by Hamming distance, and by the two-stage search, for
    every query image.

    Reports the reference protocol (organ relevance), the strict one (organ and disease), the
    expected figures over random orders of tied codes, instance recall under alterations and the
    likeness ratio; see docs/EVALUATION.md.
    """
    from dnhcli.evaluation.evaluate import EvalConfig, evaluate
    from dnhcli.stores.locate import location

    where = location(db) if db is not None else None
    config = EvalConfig(model=model, data=data, db=where, ks=int_list(k, "-k"), tie_break=tie_break,
                        radius=radius, threads=threads, dump=dump, plot=plot, force=force, rerank=rerank,
                        oversample=oversample, instance=instance, instance_sample=instance_sample)
    report = run_and_report(json, lambda progress: evaluate(config, progress), _render)
    for notice in report.notices:
        info(notice)


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
    info(f"{codes['distinct_gallery_codes']} distinct gallery codes (mean tie size "
         f"{codes['mean_gallery_tie_size']}); on average "
         f"{codes['mean_gallery_at_distance_0']} gallery items at distance 0 from a query; "
         f"the @{k} cut falls inside a tie for {codes[f'queries_cut_inside_a_tie@{k}']} queries.")
    if report.two_stage is not None:
        _render_two_stage(report.two_stage, ks, report.config["oversample"])
    if report.instance is not None:
        _render_instance(report.instance)
    if report.likeness is not None:
        like = report.likeness
        two = like["two_stage"]
        info(f"likeness ratio (pixel distance to same-class top {like['k']} / to random class-mates; "
             f"< 1: the ranking follows likeness): Hamming {_fmt(like['hamming']['ratio'], 3)}"
             + (f", two-stage {_fmt(two['ratio'], 3)}" if two else ""))
    for name, path in report.outputs.items():
        info(f"{name} written to {path}")


def _render_two_stage(two: dict[str, Any], ks: tuple[int, ...], oversample: int) -> None:
    table = Table(title=f"Two-stage ranking (Hamming candidates x{oversample}, re-scored)",
                  title_justify="left")
    table.add_column("figure")
    for k in ks:
        table.add_column(f"@{k}", justify="right")
    rows = (("reference mAP", "reference", "mAP"), ("strict mAP", "strict", "mAP"),
            ("standard nDCG", "strict", "nDCG"), ("strict precision", "strict", "P"),
            ("majority vote", "strict", "mMV"))
    for label, section, name in rows:
        table.add_row(label, *(_fmt(two[section].get(f"{name}@{k}")) for k in ks))
    stdout.print(table)


def _render_instance(instance: dict[str, Any]) -> None:
    two = instance["two_stage"]
    table = Table(title=f"Instance recall of the original, {instance['sample']} gallery images altered "
                        "(tie-aware)", title_justify="left")
    for name in ("alteration", "Hamming R@1", "R@10", *(("two-stage R@1", "R@10") if two else ())):
        table.add_column(name, justify="left" if name == "alteration" else "right", no_wrap=True)
    for name, figures in instance["hamming"].items():
        cells = [figures["recall@1"], figures["recall@10"]]
        if two:
            cells += [two[name]["recall@1"], two[name]["recall@10"]]
        table.add_row(name, *(_fmt(v, 3) for v in cells))
    stdout.print(table)
