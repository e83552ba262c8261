"""What each command imports: help and version need no heavy library, and hashing and searching
with an exported model work where torch cannot be imported at all.

Each case runs `dnh` in a fresh interpreter (imports are per process) and reads back the
modules it loaded; torch is made unimportable with `sys.modules["torch"] = None`, so any
`import torch` on the way raises ImportError.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

HEAVY = ("torch", "openvino", "onnxruntime", "numba", "scipy", "matplotlib", "nncf", "medmnist", "PIL",
         "fastapi", "uvicorn", "starlette")
COMMANDS = ("prepare-data", "train", "hash", "search", "evaluate", "export", "benchmark", "db", "serve")

_RUNNER = """
import json, sys
for name in {blocked}:
    sys.modules[name] = None  # `import name` now raises ImportError
from dnhcli.cli.app import app
try:
    app(sys.argv[1:], prog_name="dnh")
    code = 0
except SystemExit as stop:
    code = stop.code or 0
loaded = sorted({{name.split(".")[0] for name, mod in sys.modules.items() if mod is not None}})
print("\\n" + json.dumps({{"code": code, "loaded": loaded}}), file=sys.stderr)
"""


def _run(args: list[str], block_torch: bool = False, block: tuple[str, ...] = ()
         ) -> tuple[int, set[str], str]:
    """(exit code, top-level modules loaded, stdout) of `dnh args` in a fresh interpreter, with
    torch (and the modules of `block`) made unimportable."""
    blocked = [*(["torch"] if block_torch else []), *block]
    proc = subprocess.run([sys.executable, "-c", _RUNNER.format(blocked=blocked), *args],
                          capture_output=True, text=True, timeout=300)
    report = json.loads(proc.stderr.strip().splitlines()[-1])
    assert report["code"] == 0, proc.stderr
    return report["code"], set(report["loaded"]), proc.stdout


@pytest.mark.parametrize("args", [["--help"], ["--version"], *([c, "--help"] for c in COMMANDS)],
                         ids=lambda a: " ".join(a))
def test_help_and_version_import_no_heavy_library(args: list[str]) -> None:
    _, loaded, out = _run(args)
    assert out.strip()
    assert sorted(loaded & set(HEAVY)) == []


@pytest.fixture(scope="module")
def query(tmp_path_factory: pytest.TempPathFactory, synthetic_dataset: Path) -> Path:
    path = tmp_path_factory.mktemp("query") / "q.npy"
    np.save(path, np.load(synthetic_dataset / "query_images.npy")[:2])
    return path


@pytest.mark.parametrize("engine", ["encoder.xml", "encoder.onnx"])
def test_hash_and_search_with_an_exported_model_need_no_torch(engine: str, exported: Path, query: Path,
                                                              tmp_path: Path) -> None:
    if engine.endswith(".onnx"):
        pytest.importorskip("onnxruntime")
    model, db = str(exported / engine), str(tmp_path / "db")
    _, loaded, out = _run(["hash", "--model", model, "--db", db, str(query), "--json"], block_torch=True)
    assert json.loads(out)["added"] == 2
    assert "torch" not in loaded
    _, loaded, out = _run(["search", str(query), "--model", model, "--db", db, "-k", "2", "--json"],
                          block_torch=True)
    results = json.loads(out)["queries"]
    for i, found in enumerate(results):  # each query finds itself at distance 0
        assert (i, 0) in [(hit["id"], hit["distance"]) for hit in found["results"]]
    # a search of a small database does not load the numba kernels either
    assert "torch" not in loaded and "numba" not in loaded


def test_a_database_searches_with_its_stored_model_without_torch_or_onnxruntime(
        trained_model: Path, query: Path, tmp_path: Path) -> None:
    db = str(tmp_path / "db")
    _, _, out = _run(["hash", "--model", str(trained_model), "--db", db, str(query), "--json"])
    assert json.loads(out)["added"] == 2 and (tmp_path / "db" / "encoder.onnx").is_file()
    _, loaded, out = _run(["search", str(query), "--db", db, "-k", "2", "--json"], block_torch=True,
                          block=("onnxruntime",))
    assert "torch" not in loaded and "onnxruntime" not in loaded
    with_model = _run(["search", str(query), "--db", db, "--model", str(trained_model), "-k", "2",
                       "--json"])[2]
    assert json.loads(out)["queries"] == json.loads(with_model)["queries"]  # the same answers
