"""What every command shares: the option types (so a flag means the same everywhere); one
output path: Rich for people (progress on stderr), JSON on stdout for machines; one error
path: a `DnhError` becomes one line on stderr and exit code 1, no traceback (`DNH_DEBUG=1`
re-raises instead, so the full traceback shows)."""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, Optional, Protocol, TypeVar

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text
from typer.exceptions import TyperException

from dnhcli.errors import DnhError
from dnhcli.progress import ProgressFn, no_progress

JsonOpt = Annotated[bool, typer.Option(
    "--json", help="Print machine-readable JSON on stdout; no progress bar.")]
SeedOpt = Annotated[int, typer.Option(
    "--seed", help="Random seed: the same seed gives the same result.")]
ForceOpt = Annotated[bool, typer.Option(
    "--force", help="Replace an existing output that dnh made before.")]
OutDirOpt = Annotated[Path, typer.Option(
    "--out", "-o", help="Output folder (written atomically).", file_okay=False)]
DataOpt = Annotated[Path, typer.Option(
    "--data", "-d", help="A prepared dataset folder (from `dnh prepare-data`).", file_okay=False)]
BitsOpt = Annotated[int, typer.Option(
    "--bits", "-b", help="Code length K: a multiple of 8 from 8 to 128.")]
ThreadsOpt = Annotated[Optional[int], typer.Option(
    "--threads", help="CPU threads for torch and the numba kernels (default: all cores). "
                      "1 or 2 are the safest on a busy machine.", min=1)]
ModelOpt = Annotated[Path, typer.Option(
    "--model", "-m", help="A model: a checkpoint from `dnh train` (best.pt), or the encoder.xml "
                          "(OpenVINO CPU) or encoder.onnx (ONNX Runtime) from `dnh export`.",
    dir_okay=False)]
DbOpt = Annotated[str, typer.Option(
    "--db", help="A hash database: a folder, or postgresql://user@host:port/dbname[?table=NAME].")]
RerankOpt = Annotated[bool, typer.Option(
    "--rerank/--no-rerank", help="Two-stage search: Hamming candidates (-k x --oversample, and the "
    "whole tie at the cut) re-scored with the vectors stored beside the codes; --no-rerank ranks by "
    "Hamming distance alone.")]
OversampleOpt = Annotated[int, typer.Option(
    "--oversample", help="Stage-1 candidates per result of a two-stage search (1-1000).", min=1, max=1000)]


def int_list(text: str, option: str) -> tuple[int, ...]:
    """Comma-separated positive integers, e.g. `-k 10,100,1000`."""
    from dnhcli.errors import InputError

    try:
        values = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise InputError(f"{option} takes comma-separated positive integers, got {text!r}") from None
    if not values or min(values) < 1:
        raise InputError(f"{option} takes comma-separated positive integers, got {text!r}")
    return values


stdout = Console(soft_wrap=True)
stderr = Console(stderr=True, soft_wrap=True, highlight=False)


def emit_json(data: Any) -> None:
    """Print one JSON document on stdout (nothing else goes there in --json mode)."""
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def stream_json(head: dict[str, Any], key: str, items: Iterator[Any],
                tail: Callable[[], dict[str, Any]]) -> None:
    """Print one JSON document `{**head, key: [items...], **tail()}` on stdout, one item per
    line as it comes, so that a long list never has to be held in memory."""
    write = sys.stdout.write
    write(json.dumps(head, ensure_ascii=False)[:-1] + (", " if head else "") + f"{json.dumps(key)}: [")
    for n, item in enumerate(items):
        write(("," if n else "") + "\n  " + json.dumps(item, ensure_ascii=False))
        sys.stdout.flush()
    rest = json.dumps(tail(), ensure_ascii=False)[1:]
    write("\n]" + (", " + rest if rest != "}" else "}") + "\n")
    sys.stdout.flush()


def info(message: str) -> None:
    """A short note for people, on stderr."""
    stderr.print(message, markup=False)


@contextmanager
def progress_bar(enabled: bool = True) -> Iterator[ProgressFn]:
    """A `ProgressFn` drawing one Rich bar per stage on stderr; silent when disabled
    (`--json`) or when stderr is not a terminal."""
    if not enabled or not stderr.is_terminal:
        yield no_progress
        return
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn(), TimeRemainingColumn(), TextColumn("{task.fields[info]}"))
    with Progress(*columns, console=stderr) as bar:
        tasks: dict[str, Any] = {}

        def report(stage: str, done: int, total: int, info: str = "") -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total or None, info=info)
            bar.update(tasks[stage], completed=done, total=total or None, info=info)

        yield report


class Reportable(Protocol):
    def to_json(self) -> dict[str, Any]: ...


R = TypeVar("R", bound=Reportable)


def run_and_report(json: bool, work: Callable[[ProgressFn], R], render: Callable[[R], None]) -> R:
    """Run core work with a progress bar (none with --json), then print its result: the
    JSON document on stdout with --json, else the command's Rich rendering."""
    with progress_bar(enabled=not json) as progress:
        result = work(progress)
    if json:
        emit_json(result.to_json())
    else:
        render(result)
    return result


F = TypeVar("F", bound=Callable[..., Any])
DEBUG_ENV = "DNH_DEBUG"


def debug_enabled() -> bool:
    return os.environ.get(DEBUG_ENV, "") not in ("", "0", "false", "no")


def _fail(message: str, hint: str | None = None, code: int = 1) -> typer.Exit:
    line = Text("error: ", style="bold red") + Text(" ".join(message.split()))
    if hint:
        line += Text(f" (hint: {' '.join(hint.split())})", style="dim")
    stderr.print(line)
    return typer.Exit(code)


def handle_errors(func: F) -> F:
    """Wrap a command so that errors reach the user as one actionable line."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except (typer.Exit, typer.Abort, TyperException):
            raise  # typer.Exit is a RuntimeError: never swallow it below
        except DnhError as exc:
            if debug_enabled():
                raise
            raise _fail(exc.message, exc.hint, code=exc.exit_code) from None
        except KeyboardInterrupt:
            raise _fail("interrupted", code=130) from None
        except OSError as exc:
            if debug_enabled():
                raise
            where = f": {exc.filename}" if exc.filename else ""
            raise _fail(f"{exc.strerror or exc}{where}") from None
        except Exception as exc:  # noqa: BLE001 - last resort: still one line
            if debug_enabled():
                raise
            raise _fail(f"internal error: {type(exc).__name__}: {exc}",
                        hint=f"this is a bug; set {DEBUG_ENV}=1 for the traceback") from None

    return wrapper  # type: ignore[return-value]
