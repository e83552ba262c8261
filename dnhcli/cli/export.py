"""`dnh export`: a checkpoint's encoder -> ONNX and OpenVINO IR, verified against PyTorch."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer
from rich.table import Table

from dnhcli.cli.shared import ForceOpt, JsonOpt, ModelOpt, OutDirOpt, handle_errors, run_and_report, stdout

if TYPE_CHECKING:
    from dnhcli.deploy.export import ExportResult


@handle_errors
def export_command(
    model: ModelOpt,
    out: OutDirOpt,
    data: Annotated[Optional[Path], typer.Option(
        "--data", "-d", help="Verify on this prepared dataset's val split (default: synthetic images).",
        file_okay=False)] = None,
    verify_count: Annotated[int, typer.Option(help="At most this many verification images.", min=1)] = 2000,
    int8: Annotated[bool, typer.Option(
        "--int8", help="Also write encoder-int8.xml: INT8 post-training quantization with NNCF "
                       "(calibrated on --data's train split), with its own bit agreement.")] = False,
    force: ForceOpt = False,
    json: JsonOpt = False,
) -> None:
    """Export the encoder to ONNX (encoder.onnx) and OpenVINO IR (encoder.xml + .bin, FP32).

    Both carry the checkpoint's facts (bits, classes, fingerprints, preprocessing); export
    checks that OpenVINO CPU and ONNX Runtime give PyTorch's sign bits on verification images.
    `dnh hash`, `dnh search` and `dnh evaluate` take the encoder.xml as --model.
    """
    from dnhcli.deploy.export import ExportConfig, export_model

    config = ExportConfig(model=model, out=out, data=data, verify_count=verify_count, force=force, int8=int8)
    run_and_report(json, lambda progress: export_model(config), _render)


def _render(result: ExportResult) -> None:
    table = Table(title=f"Exported {result.bits}-bit encoder to {result.out}", title_justify="left")
    for name in ("runtime", "bits agreeing", "flipped bits", "codes differing", "max |h - h_torch|"):
        table.add_column(name, justify="left" if name == "runtime" else "right")
    for runtime, figures in result.agreement.items():
        table.add_row(runtime, f"{100 * figures['bits']:.3f}%", str(figures["flipped_bits"]),
                      str(figures["codes_differing"]), f"{figures['max_abs_diff']:.2e}")
    stdout.print(table)
    stdout.print(f"{result.verify_images} verification images; {result.fragile_components} code components "
                 f"within 0.01 of zero (the bits that can flip).", markup=False, highlight=False)
