"""The results script end to end on the synthetic set (one short run), so it cannot rot."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "results.py"


def test_results_script_writes_the_report(tmp_path: Path) -> None:
    doc = tmp_path / "RESULTS.md"
    doc.write_text("stale-report\n<!-- LIKENESS BEGIN -->\nlikeness-kept\n<!-- LIKENESS END -->\n")
    command = [sys.executable, str(SCRIPT), "--synthetic", "--epochs", "1", "--seeds", "0,1", "--bits", "16",
               "--main-bits", "16", "--variants", "dnh,lenet-dnh,ordinal", "--jobs", "2",
               "--synthetic-per-class", "60",
               "--out", str(tmp_path / "out"), "--doc", str(doc)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    text = doc.read_text(encoding="utf-8")
    assert "stale-report" not in text  # the report is rewritten, the likeness section carried over
    kept = "<!-- LIKENESS BEGIN -->\nlikeness-kept\n<!-- LIKENESS END -->"
    assert text.index("## Goals") < text.index(kept)
    for heading in ("## Reference protocol, 16 bits", "## Strict protocol, 16 bits", "## Ties:",
                    "## Bit lengths", "## Per organ", "## Goals", "## Training time",
                    "## Other split seeds, 16 bits", "## What else was tried"):
        assert heading in text
    assert "Breast mMV@10" in text or "Brain mMV@10" in text
    assert "PCA + ITQ on pixels" in text and "LSH on pixels" in text and " ± " in text
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert {(r["method"], r["seed"], r["split"]) for r in results} == {
        *((m, s, 0) for m in ("dnh", "lenet-dnh", "lsh", "pca-itq") for s in (0, 1)),
        *((m, s, 1) for m in ("dnh", "lenet-dnh") for s in (0, 1)),  # both run on split seed 1
        ("ordinal", 0, 0), ("flip-mean", 0, 0)}  # the one-seed studies
    bad = subprocess.run([*command[:command.index("--variants") + 1], "dnh,nope"], capture_output=True,
                         text=True, timeout=60)
    assert bad.returncode != 0 and "unknown variant" in bad.stderr
    # a second run trains nothing again
    again = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0 and "0 to train" in again.stdout
