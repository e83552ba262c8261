"""bench/own_images.py: a dataset exported as PNG folders and a table prepares back to the same
classes, counts and images (smoke run on the synthetic set)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "own_images.py"


def test_exported_folders_and_table_prepare_like_the_npz_path(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, str(SCRIPT), "--synthetic", "--per-class", "12", "--out",
                           str(tmp_path / "own")], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr[-2000:]
    for way in ("folders", "table"):
        assert (f"{way}: classes equal (8), images per class and split equal, images of each class equal"
                in done.stdout)
    assert (tmp_path / "own" / "export" / "labels.csv").read_text().startswith("path,class,group")
