"""`dnh benchmark`: encoder speed on OpenVINO CPU against PyTorch, torch.compile and ONNX
Runtime, side by side in one run, plus end-to-end query latency."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer
from rich.console import Console
from rich.table import Table

from dnhcli.bench.config import ENGINES, BenchmarkConfig
from dnhcli.cli.shared import (
    JsonOpt,
    ModelOpt,
    SeedOpt,
    handle_errors,
    info,
    int_list,
    run_and_report,
    stdout,
)

if TYPE_CHECKING:
    from dnhcli.bench.report import BenchmarkReport


def _names(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


@handle_errors
def benchmark_command(
    model: ModelOpt,
    batch: Annotated[str, typer.Option("--batch", help="Batch sizes, comma-separated.")] = "1,64,1024",
    threads: Annotated[str, typer.Option(
        "--threads", help="Thread counts to measure, comma-separated (each engine gets the same).")] = "1,2",
    engines: Annotated[str, typer.Option(
        help=f"Engines, comma-separated, from {','.join(ENGINES)} (missing ones are skipped).")
        ] = ",".join(ENGINES),
    precision: Annotated[str, typer.Option(
        help="OpenVINO inference precisions: f32, and bf16 where the CPU has it.")] = "f32,bf16",
    device: Annotated[str, typer.Option(help="OpenVINO device.")] = "CPU",
    seconds: Annotated[float, typer.Option(help="Timed seconds per configuration.", min=0.001)] = 1.0,
    rounds: Annotated[int, typer.Option(help="Interleaved rounds the seconds are split over.", min=1)] = 3,
    data: Annotated[Optional[Path], typer.Option(
        "--data", "-d", help="Take input images from this prepared dataset's val split "
                             "(default: synthetic images).", file_okay=False)] = None,
    e2e_codes: Annotated[int, typer.Option(
        help="End to end: search a database of this many random codes (0: skip).", min=0)] = 1_000_000,
    e2e_queries: Annotated[int, typer.Option(help="End to end: timed single-image queries.", min=1)] = 1000,
    k: Annotated[int, typer.Option("-k", help="End to end: results per query.", min=1)] = 10,
    db: Annotated[Optional[Path], typer.Option(
        "--db", help="End to end: search this hash database instead of random codes.", file_okay=False)
        ] = None,
    seed: SeedOpt = 0,
    json: JsonOpt = False,
) -> None:
    """Measure how fast the encoder runs, and how fast one query is answered end to end.

    --model takes an encoder.xml from `dnh export` (PyTorch and ONNX Runtime are measured when
    its checkpoint and encoder.onnx are found) or a checkpoint (exported for the run). Load
    and compile time are never counted. See docs/BENCHMARKS.md.
    """
    config = BenchmarkConfig(model=model, batches=int_list(batch, "--batch"),
                             threads=int_list(threads, "--threads"), engines=_names(engines),
                             precisions=_names(precision), device=device, seconds=seconds, rounds=rounds,
                             data=data, e2e_codes=e2e_codes, e2e_queries=e2e_queries, e2e_k=k, db=db,
                             seed=seed)
    from dnhcli.bench.infer import run_benchmark

    run_and_report(json, lambda progress: run_benchmark(config, progress), _render)


def _ms(value: Any) -> str:
    return "-" if value is None else f"{value:.4f}" if value < 1 else f"{value:.2f}"


def _render(report: BenchmarkReport) -> None:
    result = report.to_json()
    # the rows table needs about 125 columns; Rich would squeeze it into 80 when piped
    wide = stdout if stdout.is_terminal else Console(width=132, soft_wrap=True)
    for threads, summary in result["by_threads"].items():
        table = Table(title=f"{threads} thread(s): latency in ms", title_justify="left")
        for name in ("configuration", "batch", "Count", "Duration", "Median", "Average", "Min", "Max",
                     "Throughput FPS", "x PyTorch"):
            table.add_column(name, justify="left" if name == "configuration" else "right", no_wrap=True)
        rows = [r for r in result["rows"] if r["threads"] == int(threads)]
        eager = {r["batch"]: r["throughput_fps"] for r in rows if r["engine"] == "pytorch"}
        for row in rows:
            lat = row["latency_ms"]
            ratio = f"{row['throughput_fps'] / eager[row['batch']]:.2f}" if row["batch"] in eager else "-"
            table.add_row(row["label"], str(row["batch"]), str(row["count"]), f"{row['duration_ms']:.0f}",
                          _ms(lat["median"]), _ms(lat["average"]), _ms(lat["min"]), _ms(lat["max"]),
                          f"{row['throughput_fps']:,.0f}", ratio)
        wide.print(table)
        ratios = ", ".join(f"{name.replace('_', ' ')} {value}" for name, value in summary["ratios"].items())
        info(f"{threads} thread(s), best throughput against best throughput, batch-1 latency against "
             f"batch-1 latency: {ratios or 'no other engine measured'}")
    agreement = Table(title=f"Sign bits against {result['agreement_reference']}", title_justify="left")
    for name in ("engine", "bits agreeing", "flipped bits", "codes differing"):
        agreement.add_column(name, justify="left" if name == "engine" else "right")
    for label, figures in result["agreement"].items():
        agreement.add_row(label, f"{100 * figures['bits']:.3f}%", str(figures["flipped_bits"]),
                          str(figures["codes_differing"]))
    stdout.print(agreement)
    if result["end_to_end"]:
        e2e = Table(title="End to end: hash one image + search (ms)", title_justify="left")
        for name in ("backend", "threads", "codes", "k", "queries", "median", "p99", "hash median",
                     "search median"):
            e2e.add_column(name, justify="left" if name == "backend" else "right")
        for row in result["end_to_end"]:
            e2e.add_row(row["backend"], str(row["threads"]), f"{row['db_codes']:,}", str(row["k"]),
                        str(row["queries"]), _ms(row["latency_ms"]["median"]), _ms(row["latency_ms"]["p99"]),
                        _ms(row["hash_ms"]["median"]), _ms(row["search_ms"]["median"]))
        wide.print(e2e)
    info(f"OpenVINO precision of the summary: {result['precision']['default']} (bf16 where the device "
         f"has it and its bits agree to 99.9%; `--model encoder.xml` always runs f32); device "
         f"capabilities: {', '.join(result['precision']['capabilities'])}")
    for note in result["notes"]:
        info(f"note: {note}")
