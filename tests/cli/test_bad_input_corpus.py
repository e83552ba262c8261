"""Bad-input corpus, part 1: query files and models, against `dnh search`, `dnh hash` (and the
model cases also against `evaluate`, `export` and `benchmark`).

Every case must exit 1 or 2 with one clear line and change nothing; `refused` in conftest.py
runs and checks it. The datasets and option errors of every command are in
test_bad_input_commands.py.
"""

from __future__ import annotations

import json
import pickle
import struct
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from dnhcli.cli.app import app

runner = CliRunner()
D = 28


def noise(size: int) -> bytes:
    """Random bytes, the same in every run."""
    return np.random.default_rng(size).bytes(size)


def png_header(width: int, height: int) -> bytes:
    """A grey PNG that declares `width` x `height` over a few bytes of pixels."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(bytes(64)))
            + chunk(b"IEND", b""))


EXPLICIT_LE, PRIVATE_SYNTAX = b"1.2.840.10008.1.2.1\x00", b"1.2.840.99999.1.2.1\x00"  # same length


def encapsulated() -> bytes:
    from pydicom.encaps import encapsulate

    return encapsulate([b"\xff\xd8 not really JPEG-LS \xff\xd9"])


# Each is a query file given to `dnh search` (against the module's DB) and to `dnh hash` (into a new DB).
BAD_FILES: dict[str, Callable[[Any], str]] = {
    "npy-object-pickle": lambda c: c.npy(np.array([c.trap], dtype=object), allow_pickle=True),
    "raw-pickle-as-npy": lambda c: c.file("q.npy", pickle.dumps(c.trap)),
    "npy-truncated": lambda c: c.cut_npy(1000),
    "npy-header-only": lambda c: c.cut_npy(0),
    "npy-zero-bytes": lambda c: c.cut_npy(None),
    "npy-huge-header": lambda c: c.header_npy((10**12, D, D)),
    "npy-overflowing-header": lambda c: c.header_npy((2**40, 2**40, D)),
    "npy-negative-header": lambda c: c.header_npy((-1, D, D)),
    "npy-random-bytes": lambda c: c.file("q.npy", noise(4096)),
    "shape-10x4x4": lambda c: c.npy(np.zeros((10, 4, 4), np.uint8)),
    "shape-1x500-strip": lambda c: c.npy(np.zeros((1, 500), np.float32)),
    "shape-2x3x28x28": lambda c: c.npy(np.zeros((2, 3, D, D), np.uint8)),
    "shape-28": lambda c: c.npy(np.zeros((D,), np.uint8)),
    "shape-2x28x28x2": lambda c: c.npy(np.zeros((2, D, D, 2), np.uint8)),
    "uint32-over-255": lambda c: c.npy(np.full((40, 40), 70000, np.uint32)),
    "shape-scalar": lambda c: c.npy(np.uint8(3)),
    "dtype-complex": lambda c: c.npy(np.zeros((D, D), np.complex64)),
    "dtype-bool": lambda c: c.npy(np.zeros((D, D), bool)),
    "dtype-str": lambda c: c.npy(np.full((D, D), "a")),
    "dtype-datetime": lambda c: c.npy(np.zeros((D, D), "datetime64[s]")),
    "dtype-structured": lambda c: c.npy(np.zeros((D, D), [("a", "u1"), ("b", "f4")])),
    "nan": lambda c: c.npy(np.full((D, D), np.nan, np.float32)),
    "inf": lambda c: c.npy(np.full((2, D, D), np.inf)),
    "negative-ints": lambda c: c.npy(np.full((D, D), -1, np.int16)),
    "ints-over-255": lambda c: c.npy(np.full((D, D), 256, np.int32)),
    "floats-over-1": lambda c: c.npy(np.full((D, D), 1.5, np.float32)),
    "empty-stack": lambda c: c.npy(np.zeros((0, D, D), np.uint8)),
    "text-as-png": lambda c: c.file("q.png", "this is not an image\n"),
    "random-bytes-as-png": lambda c: c.file("q.png", noise(2048)),
    "png-1x300": lambda c: c.png(300, height=1),
    "png-0x0-header": lambda c: c.file("q.png", png_header(0, 0)),
    "tiff-two-pages": lambda c: c.tiff_pages(2),
    "dicom-no-pixel-data": lambda c: c.dicom(np.zeros((D, D), np.uint8),
                                             edit=lambda ds: delattr(ds, "PixelData")),
    "dicom-truncated": lambda c: c.file("t.dcm", Path(c.dicom(np.zeros((64, 64), np.uint16)))
                                        .read_bytes()[:-4000]),
    "dicom-jpeg-ls-without-decoder": lambda c: c.dicom(
        np.zeros((D, D), np.uint8), syntax="1.2.840.10008.1.2.4.80", pixel_data=encapsulated()),
    "dicom-unknown-transfer-syntax": lambda c: c.file("q.dcm", Path(c.dicom(np.zeros((D, D), np.uint8)))
                                                      .read_bytes().replace(EXPLICIT_LE, PRIVATE_SYNTAX)),
    "dicom-declares-60000x60000": lambda c: c.dicom(np.zeros((D, D), np.uint8), Rows=60000, Columns=60000),
    "dicom-rows-0": lambda c: c.dicom(np.zeros((D, D), np.uint8), Rows=0),
    "dicom-window-width-0": lambda c: c.dicom(np.zeros((D, D), np.uint8), window=(40.0, 0.0)),
    "dicom-preamble-then-garbage": lambda c: c.file("q.dcm", bytes(128) + b"DICM" + noise(300)),
    "dicom-text-file": lambda c: c.file("q.dcm", "not a DICOM file\n"),
    "png-28x28-pixels-cut": lambda c: c.file("q.png", png_header(D, D)),
    "png-header-10000x10000": lambda c: c.file("q.png", png_header(10_000, 10_000)),  # Pillow warns
    "png-header-100000x100000": lambda c: c.file("q.png", png_header(100_000, 100_000)),  # Pillow raises
    "npz-as-query": lambda c: c.file("q.npz", b"PK\x03\x04 not really"),
    "folder-named-npy": lambda c: str((c.tmp / "x.npy").mkdir() or c.tmp / "x.npy"),
    "folder-without-images": lambda c: c.folder("f"),
    "missing": lambda c: str(c.tmp / "missing.npy"),
    "missing-space-unicode": lambda c: str(c.tmp / "my scan ü 画像.npy"),
    "missing-quotes": lambda c: str(c.tmp / "it's \"q\".npy"),
}


def search(c: Any, *queries: str, model: str | None = None, db: str | None = None) -> list[str]:
    return ["search", "--model", model or c.model, "--db", db or c.db, "--", *queries]


def hash_(c: Any, *inputs: str, model: str | None = None, db: str | None = None) -> list[str]:
    return ["hash", "--model", model or c.model, "--db", db or str(c.tmp / "newdb"), "--", *inputs]


FILE_CASES = [pytest.param(lambda c, f=f: search(c, f(c)), id=f"search-{n}") for n, f in BAD_FILES.items()]
FILE_CASES += [pytest.param(lambda c, f=f: hash_(c, f(c)), id=f"hash-{n}") for n, f in BAD_FILES.items()]
FILE_CASES += [
    pytest.param(lambda c: search(c, "-q.npy"), id="search-missing-leading-dash-after-double-dash"),
    pytest.param(lambda c: hash_(c, c.good_npy(), c.file("bad.npy", "x"), db=c.db),
                 id="hash-good-then-bad-file-into-existing-db"),
    pytest.param(lambda c: hash_(c, c.good_npy(), str(c.tmp / "none.png")), id="hash-good-then-missing"),
]


def bits32(p: dict[str, Any]) -> None:
    """A consistent 32-bit checkpoint of the same architecture."""
    from dnhcli.models.registry import create_model

    torch.manual_seed(1)
    p["bits"], p["model"] = 32, create_model(p["arch"], 32, len(p["class_names"])).state_dict()


def other_weights(p: dict[str, Any]) -> None:
    p["model"] = {k: v + 0.01 if v.is_floating_point() else v for k, v in p["model"].items()}


def db32(c: Any) -> str:
    """A 32-bit database in tmp, built by `dnh hash` with a 32-bit checkpoint."""
    model, db = c.checkpoint(bits32, "m32.pt"), str(c.tmp / "db32")
    done = runner.invoke(app, ["hash", "--model", model, "--db", db, "--data", c.data])
    assert done.exit_code == 0, done.output
    return db


def ir_without_bin(c: Any) -> str:
    return c.file("encoder.xml", Path(c.xml).read_bytes())


BAD_MODELS: dict[str, Callable[[Any], str]] = {
    "pickle-canary-pt": lambda c: c.file("m.pt", pickle.dumps(c.trap)),
    "torch-save-canary-pt": lambda c: str(torch.save({"x": c.trap}, c.tmp / "m.pt") or c.tmp / "m.pt"),
    "random-bytes-pt": lambda c: c.file("m.pt", noise(4096)),
    "truncated-pt": lambda c: c.file("m.pt", Path(c.model).read_bytes()[:20000]),
    "foreign-state-dict-pt": lambda c: c.checkpoint(lambda p: torch.nn.Linear(784, 16).state_dict()),
    "foreign-weights-in-dnh-pt": lambda c: c.checkpoint(
        lambda p: p.update(model=torch.nn.Linear(784, 16).state_dict())),
    "checkpoint-format-99": lambda c: c.checkpoint(lambda p: p.update(format_version=99)),
    "checkpoint-without-arch": lambda c: c.checkpoint(lambda p: p.pop("arch")),
    "bits-edited-weights-not": lambda c: c.checkpoint(lambda p: p.update(bits=32)),
    "garbage-xml": lambda c: c.file("encoder.xml", "<<<not xml at all"),
    "xml-not-a-model": lambda c: c.file("encoder.xml", '<?xml version="1.0"?><net><layers/></net>'),
    "ir-without-bin": ir_without_bin,
    "onnx-suffix": lambda c: c.file("m.onnx", noise(64)),
    "missing-model": lambda c: str(c.tmp / "none.pt"),
}
MODEL_CASES = [pytest.param(lambda c, m=m: search(c, c.good_npy(), model=m(c)), id=f"search-model-{n}")
               for n, m in BAD_MODELS.items()]
MODEL_CASES += [pytest.param(lambda c, m=m: hash_(c, c.good_npy(), model=m(c), db=c.db), id=f"hash-model-{n}")
                for n, m in BAD_MODELS.items() if n in ("pickle-canary-pt", "truncated-pt", "garbage-xml")]
MODEL_CASES += [
    pytest.param(lambda c: ["evaluate", "--model", BAD_MODELS["torch-save-canary-pt"](c), "--data", c.data],
                 id="evaluate-model-torch-save-canary-pt"),
    pytest.param(lambda c: ["export", "--model", BAD_MODELS["pickle-canary-pt"](c), "--out",
                            str(c.tmp / "exp")], id="export-model-pickle-canary-pt"),
    pytest.param(lambda c: ["export", "--model", BAD_MODELS["foreign-weights-in-dnh-pt"](c), "--out",
                            str(c.tmp / "exp")], id="export-model-foreign-weights"),
    pytest.param(lambda c: ["export", "--model", c.xml, "--out", str(c.tmp / "exp")], id="export-model-xml"),
    pytest.param(lambda c: ["benchmark", "--model", BAD_MODELS["random-bytes-pt"](c)],
                 id="benchmark-random-pt"),
    pytest.param(lambda c: ["benchmark", "--model", BAD_MODELS["garbage-xml"](c)],
                 id="benchmark-garbage-xml"),
    # a real checkpoint of another bit length, or of other weights, against the 16-bit database
    pytest.param(lambda c: search(c, c.good_npy(), model=c.checkpoint(bits32)),
                 id="search-32-bit-model-16-bit-db"),
    pytest.param(lambda c: hash_(c, c.good_npy(), model=c.checkpoint(bits32), db=c.db),
                 id="hash-32-bit-model-into-16-bit-db"),
    pytest.param(lambda c: hash_(c, c.good_npy(), model=c.checkpoint(other_weights), db=c.db),
                 id="hash-other-weights-into-db"),
    pytest.param(lambda c: ["evaluate", "--model", c.checkpoint(bits32), "--data", c.data, "--db", c.db],
                 id="evaluate-32-bit-model-16-bit-db"),
    # the exported 16-bit IR against a 32-bit database
    pytest.param(lambda c: search(c, c.good_npy(), model=c.xml, db=db32(c)), id="search-16-bit-ir-32-bit-db"),
    pytest.param(lambda c: hash_(c, c.good_npy(), model=c.xml, db=db32(c)),
                 id="hash-16-bit-ir-into-32-bit-db"),
]


@pytest.mark.parametrize("build", FILE_CASES + MODEL_CASES)
def test_bad_query_file_or_model_is_refused_cleanly(build: Callable[[Any], list[str]],
                                                     refused: Callable[..., None]) -> None:
    refused(build)


@pytest.mark.parametrize("name", ["my query ü 画像 (1).npy", "-q.npy"])
def test_a_valid_query_with_an_unusual_name_is_searched(name: str, corpus: Any) -> None:
    """The positive control: such names are not what the corpus's refusals are about."""
    query = corpus.good_npy(name)
    args = ["search", "--model", corpus.model, "--db", corpus.db, "-k", "3", "--json", "--",
            name if name.startswith("-") else query]
    before = corpus.state()
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    found = json.loads(result.stdout)["queries"]
    assert [len(q["results"]) for q in found] == [3, 3] and name in found[0]["query"]
    assert corpus.state() == before
