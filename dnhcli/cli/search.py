"""`dnh search`: the stored images nearest to query images, by Hamming distance."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from dnhcli.cli.errors import handle_errors
from dnhcli.cli.options import DbOpt, JsonOpt, ModelOpt
from dnhcli.cli.output import emit_json, info, stdout
from dnhcli.core.errors import InputError
from dnhcli.core.retrieval import SearchConfig, SearchResult, search


@handle_errors
def search_command(
    queries: Annotated[list[Path], typer.Argument(
        help="Query images: .npy (one image or a stack), .png, or folders of them.")],
    model: ModelOpt,
    db: DbOpt,
    k: Annotated[int, typer.Option("-k", "--top-k", help="Results per query.", min=1)] = 10,
    radius: Annotated[Optional[int], typer.Option(
        help="Every item within this Hamming distance (at most -k of them).", min=0)] = None,
    tie_break: Annotated[str, typer.Option(
        help="Order inside a Hamming tie: insertion-order, or asymmetric (the query's continuous "
             "code against the stored bits: the stored code that disagrees only on the query's "
             "least certain bits comes first).")] = "insertion-order",
    montage: Annotated[Optional[Path], typer.Option(
        help="Also draw each query beside its results into this PNG.", dir_okay=False)] = None,
    json: JsonOpt = False,
) -> None:
    """Find the stored images nearest to each query by Hamming distance."""
    if montage is not None and montage.suffix.lower() != ".png":
        raise InputError(f"--montage must name a .png file, got {montage}")
    result = search(SearchConfig(model=model, db=db, queries=tuple(queries), k=k, radius=radius,
                                 tie_break=tie_break))
    if montage is not None:
        from dnhcli.core.montage import write_montage

        write_montage(result, montage)
    if json:
        emit_json(result.to_json())
        return
    _render(result)
    if montage is not None:
        info(f"montage written to {montage}")


def _render(result: SearchResult) -> None:
    for query in result.queries:
        title = f"{query.query}: {len(query.results)} results" + (
            f" within distance {result.radius}" if result.radius is not None else "")
        table = Table(title=title, title_justify="left")
        for name, justify in (("rank", "right"), ("distance", "right"), ("id", "right"),
                              ("source", "left"), ("organ", "left"), ("disease", "left")):
            table.add_column(name, justify=justify)  # type: ignore[arg-type]
        for hit in query.results:
            table.add_row(str(hit["rank"]), str(hit["distance"]), str(hit["id"]),
                          str(hit["source"]), str(hit["organ"] or ""), str(hit["disease"] or ""))
        stdout.print(table)
    info(f"searched {len(result.queries)} queries in {1000 * result.seconds:.2f} ms")
