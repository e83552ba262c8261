from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from dnhcli.cli.app import app

runner = CliRunner()


def test_export_json_and_errors(trained_model: Path, tmp_path: Path) -> None:
    out = tmp_path / "exported"
    result = runner.invoke(app, ["export", "--model", str(trained_model), "--out", str(out), "--json",
                                 "--verify-count", "200"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert {"onnx", "openvino_xml", "bit_agreement"} <= set(data)
    assert data["bit_agreement"] == 1.0 and Path(data["openvino_xml"]).is_file()
    again = runner.invoke(app, ["export", "--model", str(trained_model), "--out", str(out)])
    assert again.exit_code == 1 and "Traceback" not in again.output
    missing = runner.invoke(app, ["export", "--model", str(tmp_path / "none.pt"),
                                  "--out", str(tmp_path / "x")])
    assert missing.exit_code == 1 and len(missing.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "x").exists()
