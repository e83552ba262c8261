"""`dnh search`: the stored images nearest to query images (two-stage, or by Hamming distance)."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer
from rich.table import Table

from dnhcli.cli.shared import (
    DbOpt,
    JsonOpt,
    OversampleOpt,
    RerankOpt,
    emit_json,
    handle_errors,
    info,
    stdout,
    stream_json,
)
from dnhcli.data.defaults import CHUNK
from dnhcli.errors import InputError

if TYPE_CHECKING:
    from dnhcli.retrieval.query import QueryResult


@handle_errors
def search_command(
    queries: Annotated[list[Path], typer.Argument(
        help="Query images of any size: PNG, JPEG, BMP, TIFF, DICOM, .npy (one image or a stack), "
             "or folders of them.")],
    db: DbOpt,
    model: Annotated[Optional[Path], typer.Option(
        "--model", "-m", help="The model (best.pt, encoder.xml or encoder.onnx); by default the "
                              "encoder the database stores.", dir_okay=False)] = None,
    k: Annotated[int, typer.Option("-k", "--top-k", help="Results per query.", min=1)] = 10,
    radius: Annotated[Optional[int], typer.Option(
        help="Every item within this Hamming distance (at most -k of them).", min=0)] = None,
    rerank: RerankOpt = True,
    oversample: OversampleOpt = 10,
    tie_break: Annotated[str, typer.Option(
        help="Order inside a Hamming tie when not re-ranking: insertion-order, or asymmetric (the "
             "query's continuous code against the stored bits: the stored code that disagrees only "
             "on the query's least certain bits comes first).")] = "insertion-order",
    montage: Annotated[Optional[Path], typer.Option(
        help="Also draw each query beside its results into this PNG (holds every result in "
             "memory: meant for a few queries).", dir_okay=False)] = None,
    chunk: Annotated[int, typer.Option(
        help="Query images read, hashed and ranked at a time; memory grows with it, not with "
             "the number of queries.", min=1)] = CHUNK,
    json: JsonOpt = False,
) -> None:
    """Find the stored images nearest to each query: Hamming candidates re-scored by the vectors
    stored beside the codes (two-stage; a radius search and --no-rerank rank by Hamming alone).

    Results are printed as they come (with --json, as one JSON document with one query per
    line), so any number of queries can be searched in bounded memory.
    """
    from dnhcli.retrieval.query import SearchConfig, SearchResult, iter_search, search
    from dnhcli.stores.locate import location

    where = location(db)

    if montage is not None and montage.suffix.lower() != ".png":
        raise InputError(f"--montage must name a .png file, got {montage}")
    config = SearchConfig(model=model, db=where, queries=tuple(queries), k=k, radius=radius,
                          tie_break=tie_break, chunk=chunk, rerank=rerank, oversample=oversample)
    began = time.perf_counter()
    if montage is not None:
        from dnhcli.retrieval.montage import write_montage

        result = search(config)
        for notice in result.notices:
            info(notice)
        write_montage(result, montage)
        if json:
            emit_json(result.to_json())
        else:
            _render(result.queries, radius, began)
            info(f"montage written to {montage}")
        return
    header = SearchResult(db=where, bits=0, k=k, radius=radius, seconds=0.0, tie_break=tie_break,
                          oversample=oversample)
    stream = iter_search(config, header=header)
    first = next(stream, None)  # every input is checked and the database opened by now
    for notice in header.notices:
        info(notice)
    results = itertools.chain([] if first is None else [first], stream)
    if json:
        head = {key: value for key, value in header.to_json().items() if key not in ("queries", "seconds")}
        stream_json(head, "queries", ({"query": q.query, "results": q.results} for q in results),
                    lambda: {"seconds": round(time.perf_counter() - began, 6)})
        return
    _render(results, radius, began)


def _render(queries: Iterable[QueryResult], radius: int | None, began: float) -> None:
    """One table per query as it comes, then how many queries took how long since `began`."""
    count = 0
    for query in queries:
        count += 1
        title = f"{query.query}: {len(query.results)} results" + (
            f" within distance {radius}" if radius is not None else "")
        table = Table(title=title, title_justify="left")
        for name, justify in (("rank", "right"), ("distance", "right"), ("score", "right"), ("id", "right"),
                              ("source", "left"), ("organ", "left"), ("disease", "left")):
            table.add_column(name, justify=justify)  # type: ignore[arg-type]
        for hit in query.results:
            score = "" if hit["score"] is None else f"{hit['score']:.3f}"
            table.add_row(str(hit["rank"]), str(hit["distance"]), score, str(hit["id"]),
                          str(hit["source"]), str(hit["organ"] or ""), str(hit["disease"] or ""))
        stdout.print(table)
    info(f"searched {count} queries in {1000 * (time.perf_counter() - began):.2f} ms")
