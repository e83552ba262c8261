"""Option aliases shared by every command, so a flag means the same everywhere."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

JsonOpt = Annotated[bool, typer.Option(
    "--json", help="Print machine-readable JSON on stdout; no progress bar.")]
SeedOpt = Annotated[int, typer.Option(
    "--seed", help="Random seed: the same seed gives the same result.")]
ForceOpt = Annotated[bool, typer.Option(
    "--force", help="Replace an existing output that dnh made before.")]
OutDirOpt = Annotated[Path, typer.Option(
    "--out", "-o", help="Output folder (written atomically).", file_okay=False)]
