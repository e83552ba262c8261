"""One output path: Rich for people (progress on stderr), JSON on stdout for machines."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Protocol, TypeVar

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from dnhcli.progress import ProgressFn, no_progress

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
                tasks[stage] = bar.add_task(stage, total=total, info=info)
            bar.update(tasks[stage], completed=done, total=total, info=info)

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
