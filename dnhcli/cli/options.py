"""Option aliases shared by every command, so a flag means the same everywhere."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

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
DbOpt = Annotated[Path, typer.Option(
    "--db", help="A hash database folder.", file_okay=False)]


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
