"""The progress callback the core reports long work through (the CLI draws it)."""

from __future__ import annotations

from collections.abc import Callable

ProgressFn = Callable[[str, int, int], None]
"""Called as `progress(stage, done, total)`: `done` of `total` units of `stage` are finished."""


def no_progress(stage: str, done: int, total: int) -> None:
    """The default callback: report nothing."""
