"""The fault-injection script's quick run (the fast subset CI runs): every kind of fault is
tried, and no trial loses data or gives a wrong answer."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "faults.py"


def test_quick_fault_injection_loses_nothing(trained_model: Path, tmp_path: Path) -> None:
    out = tmp_path / "faults.json"
    done = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--model", str(trained_model), "--json",
                           str(out)], capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads(out.read_text())
    rows = {row["fault"]: row for row in report["rows"]}
    assert report["problems"] == []
    assert all(row["lost"] == 0 and row["wrong"] == 0 for row in rows.values())
    for kind in ("kill at a random time (light writer)", "kill at each crash point (append, compaction)",
                 "kill during `dnh hash` (create + appends)", "truncation (every file)",
                 "single bit flip (every file)", "locked: `dnh hash`"):
        assert rows[kind]["trials"] > 0, kind
    assert rows["kill at each crash point (append, compaction)"]["consistent"] == 12
    assert rows["truncation (every file)"]["detected"] > 0
    assert any(kind.startswith("disk full: file-size limit, append refused") for kind in rows)
    assert any(kind.startswith("two writers at once") for kind in rows)
    assert "| **all** |" in done.stdout
