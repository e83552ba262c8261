"""The root `dnh` app: global options, and one mounted module per working subcommand."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from dnhcli import __version__
from dnhcli.cli import benchmark, db, evaluate, export, prepare_data, search, serve, train
from dnhcli.cli import hash as hash_cmd


class _Group(TyperGroup):
    """The root group. Typer coerces a parameter through pydantic (about 80 ms to import) unless
    its value is already a bool; the root's --help and --version flags default to False, so
    `dnh CMD --help` and `dnh --version` never load it."""

    def get_help_option(self, ctx: Any) -> Any:
        option = super().get_help_option(ctx)
        if option is not None and option.default is None:
            option.default = False
        return option


app = typer.Typer(
    cls=_Group,
    name="dnh",
    help="Content-based medical image retrieval with deep neural hashing.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="rich",
    pretty_exceptions_show_locals=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.command("prepare-data")(prepare_data.prepare_data)
app.command("train")(train.train_command)
app.command("hash")(hash_cmd.hash_command)
app.command("search")(search.search_command)
app.command("evaluate")(evaluate.evaluate_command)
app.command("export")(export.export_command)
app.command("benchmark")(benchmark.benchmark_command)
app.command("serve")(serve.serve_command)
app.add_typer(db.app, name="db")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"dnh {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[bool, typer.Option(
        "--version", callback=_version, is_eager=True, help="Show the version and exit.")] = False,
) -> None:
    """dnh: hash medical images to short binary codes and find the most similar ones."""


def main() -> None:
    """Console-script entry point."""
    app()
