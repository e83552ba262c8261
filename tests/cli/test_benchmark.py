"""`dnh benchmark` on the command line: a short run's JSON, the tables, and bad input."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from dnhcli.cli.app import app

runner = CliRunner()
SHORT = ["--batch", "1,4", "--threads", "1", "--seconds", "0.02", "--rounds", "1",
         "--e2e-codes", "2000", "--e2e-queries", "5", "--engines", "openvino,pytorch,onnxruntime"]


def test_benchmark_json_and_tables(exported: Path) -> None:
    result = runner.invoke(app, ["benchmark", "--model", str(exported / "encoder.xml"), *SHORT, "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["openvino"]["throughput_fps"] > 0 and data["openvino"]["latency_ms"]["median"] > 0
    assert data["pytorch"]["throughput_fps"] > 0 and data["pytorch"]["latency_ms"]["median"] > 0
    assert "openvino_over_pytorch_throughput" in data["ratios"]
    assert data["end_to_end"][0]["latency_ms"]["p99"] > 0
    shown = runner.invoke(app, ["benchmark", "--model", str(exported / "encoder.xml"), *SHORT])
    assert shown.exit_code == 0, shown.output
    for name in ("Count", "Duration", "Median", "Average", "Min", "Max", "Throughput FPS", "p99"):
        assert name in shown.stdout


def test_bad_input_is_one_line_and_writes_nothing(exported: Path, tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.xml"
    garbage.write_text("not xml at all")
    cases = [["--model", str(exported / "encoder.xml"), "--device", "TPU"],
             ["--model", str(garbage)],
             ["--model", str(tmp_path / "missing.xml")],
             ["--model", str(exported / "encoder.xml"), "--batch", "0"],
             ["--model", str(exported / "encoder.xml"), "--engines", "openvino,jax"]]
    for args in cases:
        result = runner.invoke(app, ["benchmark", *SHORT[:8], *args])
        assert result.exit_code in (1, 2), (args, result.output)
        assert "Traceback" not in result.output
        assert len(result.stderr.strip().splitlines()) == 1, (args, result.stderr)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["garbage.xml"]
