"""The progress callback the core reports long work through (the CLI draws it)."""

from __future__ import annotations

from typing import Protocol


class ProgressFn(Protocol):
    """Called as `progress(stage, done, total, info)`: `done` of `total` units of `stage` are
    finished; `info` is an optional short status (e.g. the last epoch's losses)."""

    def __call__(self, stage: str, done: int, total: int, info: str = "") -> None: ...


def no_progress(stage: str, done: int, total: int, info: str = "") -> None:
    """The default callback: report nothing."""
