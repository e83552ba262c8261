"""One error path: a `DnhError` becomes one line on stderr and exit code 1, no traceback.

`DNH_DEBUG=1` re-raises instead, so the full traceback shows.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import Any, TypeVar

import typer
from rich.text import Text
from typer.exceptions import TyperException

from dnhcli.cli.output import stderr
from dnhcli.errors import DnhError

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
