"""The machinery of the bad-input corpus (tests/cli/test_bad_input_*.py): a case builds its files
in tmp_path through `Ctx` and returns a command line; `refused` runs it and checks that it
failed cleanly and changed nothing.

What "cleanly" means: exit 1 with one line `error: ...` on stderr (not the "internal error"
that the error handler prints for an unexpected exception), or exit 2 (a malformed
command line); no traceback, nothing on stdout, no warning, nothing written to the process's
own stderr behind Click's back (C++ libraries log there, and CliRunner would not see it), no
pickle loaded, and every file and folder under tmp_path and under the shared fixtures the case
used exactly as before (path, size, sha256).

Exit 2 comes from Click, which Typer renders with Rich as a usage line, a "Try ... -h" line and
an "Error" panel (wrapped at the console width). Changing that for every command is out of the
corpus's scope, so for exit 2 the check is that stderr is exactly that block with one error
message in the panel: the counterpart of "the last line is the error line" for plain Click.
"""

from __future__ import annotations

import hashlib
import json
import os
import resource
import shutil
import warnings
from collections.abc import Callable
from io import BytesIO
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from dnhcli.cli.app import app

runner = CliRunner()
QUIET = (DeprecationWarning, PendingDeprecationWarning, ImportWarning, ResourceWarning)  # hidden by default


class Canary:
    """Unpickling it creates the file `path`: proof that something unpickled untrusted data."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (self.path, "w"))


def snapshot(roots: list[Path]) -> dict[str, tuple[Any, ...]]:
    """Every folder, and every file's size and sha256, under `roots`."""
    found: dict[str, tuple[Any, ...]] = {}
    for root in roots:
        for folder, _, files in os.walk(root):
            found[folder] = ("dir",)
            for name in files:
                data = (Path(folder) / name).read_bytes()
                found[str(Path(folder) / name)] = (len(data), hashlib.sha256(data).hexdigest())
    return found


@pytest.fixture(scope="module")
def corpus_db(trained_model: Path, synthetic_dataset: Path, tmp_path_factory: pytest.TempPathFactory
              ) -> Path:
    """A 16-bit database of the synthetic gallery, built by `dnh hash` once per module."""
    db = tmp_path_factory.mktemp("corpus") / "db"
    result = runner.invoke(app, ["hash", "--model", str(trained_model), "--db", str(db),
                                 "--data", str(synthetic_dataset), "--split", "gallery"])
    assert result.exit_code == 0, result.output
    return db


class Ctx:
    """What a case builder may use. Files go to tmp_path; the shared fixtures a case touches
    (session ones are made lazily) join the snapshot."""

    def __init__(self, tmp: Path, request: pytest.FixtureRequest) -> None:
        self.tmp, self.request = tmp, request
        self.watched = [tmp]
        self.canary = tmp / "canary"

    def _fixture(self, name: str, root: Callable[[Path], Path] = lambda p: p) -> Path:
        path = Path(self.request.getfixturevalue(name))
        self.watched.append(root(path))
        return path

    @property
    def model(self) -> str:
        """The 16-bit checkpoint (its whole run folder is watched)."""
        return str(self._fixture("trained_model", lambda p: p.parent))

    @property
    def data(self) -> str:
        return str(self._fixture("synthetic_dataset"))

    @property
    def db(self) -> str:
        return str(self._fixture("corpus_db"))

    @property
    def xml(self) -> str:
        return str(self._fixture("exported") / "encoder.xml")

    def state(self) -> dict[str, tuple[Any, ...]]:
        """The snapshot of tmp_path and of every shared fixture used so far."""
        return snapshot(self.watched)

    @property
    def trap(self) -> Canary:
        """An object whose unpickling creates `self.canary`."""
        return Canary(self.canary)

    def file(self, name: str, content: bytes | str) -> str:
        path = self.tmp / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content.encode() if isinstance(content, str) else content)
        return str(path)

    def folder(self, name: str = "stranger") -> str:
        """A folder holding a file that dnh did not write."""
        self.file(f"{name}/notes.txt", "mine, not dnh's")
        return str(self.tmp / name)

    def npy(self, array: Any, name: str = "q.npy", **kw: Any) -> str:
        np.save(self.tmp / name, array, **kw)
        return str(self.tmp / name)

    def good_npy(self, name: str = "good.npy") -> str:
        """Two real query images of the synthetic set."""
        return self.npy(np.load(Path(self.data) / "query_images.npy")[:2], name)

    def cut_npy(self, keep: int | None) -> str:
        """A valid (5, 28, 28) .npy cut `keep` bytes after its header (None: a zero-byte file)."""
        raw = Path(self.npy(np.zeros((5, 28, 28), np.uint8))).read_bytes()
        return self.file("q.npy", b"" if keep is None else raw[:128 + keep])

    def header_npy(self, shape: tuple[int, ...]) -> str:
        """A .npy whose header declares `shape` over a 16-byte body."""
        with open(self.tmp / "q.npy", "wb") as handle:
            np.lib.format.write_array_header_1_0(
                handle, {"descr": "|u1", "fortran_order": False, "shape": shape})
            handle.write(bytes(16))
        return str(self.tmp / "q.npy")

    def png(self, side: int, name: str = "q.png", height: int | None = None) -> str:
        from PIL import Image

        buffer = BytesIO()
        Image.new("L", (side, height or side)).save(buffer, format="PNG")
        return self.file(name, buffer.getvalue())

    def tiff_pages(self, pages: int, name: str = "q.tif") -> str:
        from PIL import Image

        frames = [Image.new("L", (40, 40), 10 * i) for i in range(pages)]
        frames[0].save(self.tmp / name, save_all=True, append_images=frames[1:])
        return str(self.tmp / name)

    def dicom(self, pixels: Any, name: str = "q.dcm", edit: Callable[[Any], Any] | None = None,
              **kw: Any) -> str:
        """A DICOM file (tests/conftest.py `write_dicom`), then changed by `edit(dataset)`."""
        path = self.request.getfixturevalue("dicom_writer")(self.tmp / name, np.asarray(pixels), **kw)
        if edit is not None:
            import pydicom

            ds = pydicom.dcmread(path)
            edit(ds)
            ds.save_as(path)
        return str(path)

    def checkpoint(self, edit: Callable[[dict[str, Any]], Any], name: str = "model.pt") -> str:
        """The trained checkpoint changed by `edit` (what it returns is saved instead, if not None)."""
        payload = torch.load(self.model, map_location="cpu", weights_only=True)
        out = edit(payload)
        torch.save(payload if out is None else out, self.tmp / name)
        return str(self.tmp / name)

    def dataset(self, edit: Callable[[Path, dict[str, Any]], Any] | None = None) -> str:
        """A copy of the synthetic dataset in tmp, changed by `edit(folder, manifest)`."""
        out = self.tmp / "ds"
        shutil.copytree(self.data, out)
        if edit is not None:
            manifest = json.loads((out / "manifest.json").read_text())
            edit(out, manifest)
            (out / "manifest.json").write_text(json.dumps(manifest))
        return str(out)


def check_usage_error(stderr: str) -> None:
    """Click's usage error as Typer renders it: usage, a "Try" line, one Error panel."""
    lines = stderr.strip().splitlines()
    assert len(lines) >= 4 and lines[0].startswith("Usage: dnh ") and lines[1].startswith("Try 'dnh "), stderr
    assert lines[2].startswith("╭─ Error") and lines[-1].startswith("╰"), stderr
    assert all(line.startswith("│") and line.strip("│ ") for line in lines[3:-1]), stderr


@pytest.fixture
def corpus(tmp_path: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Ctx:
    """A `Ctx` in tmp_path, which is also the working folder (relative paths, and any stray
    write, land in the snapshot)."""
    for name in ("DNH_DEBUG", "DNH_MEDMNIST_ROOT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    return Ctx(tmp_path, request)


@pytest.fixture
def refused(corpus: Ctx, capfd: pytest.CaptureFixture[str]) -> Callable[[Callable[[Ctx], list[str]]], None]:
    """Build a case's files and command line, run it, and check that it failed cleanly."""

    def run(build: Callable[[Ctx], list[str]]) -> None:
        args = build(corpus)
        before, peak = corpus.state(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        capfd.readouterr()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = runner.invoke(app, args)
        behind = capfd.readouterr()
        assert isinstance(result.exception, SystemExit), (result.exception, result.output)
        assert result.exit_code in (1, 2), result.output
        assert "Traceback" not in result.output and "\x1b" not in result.output, result.output
        assert result.stdout == "" and behind.out == behind.err == "", (result.stdout, behind)
        assert not [w for w in caught if not issubclass(w.category, QUIET)], [str(w) for w in caught]
        if result.exit_code == 1:
            lines = result.stderr.strip().splitlines()
            assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
            assert "internal error" not in lines[0], result.stderr  # the handler's last resort for bugs
        else:
            check_usage_error(result.stderr)
        assert not corpus.canary.exists(), "a pickle was loaded"
        after = corpus.state()
        changed = sorted(p for p in before.keys() | after.keys() if before.get(p) != after.get(p))
        assert not changed, f"created, changed or removed: {changed}"
        grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak
        assert grown < 1 << 20, f"peak memory grew by {grown} KiB"

    return run
