"""Export round trip: ONNX and OpenVINO IR that hash like PyTorch, with the checkpoint's facts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import openvino as ov
import pytest

from dnhcli.data.dataset import PreparedDataset
from dnhcli.deploy.backends import load_backend
from dnhcli.deploy.export import ExportConfig, export_model
from dnhcli.errors import ModelError, OutputExistsError
from dnhcli.index.codes import codes_from_continuous
from dnhcli.retrieval.hashing import HashConfig, hash_into_db
from dnhcli.retrieval.query import SearchConfig, search


def test_files_checker_and_metadata(exported: Path, trained_model: Path) -> None:
    assert {p.name for p in exported.iterdir()} == {"encoder.onnx", "encoder.xml", "encoder.bin",
                                                     "manifest.json"}
    model = onnx.load(str(exported / "encoder.onnx"))
    onnx.checker.check_model(model)
    props = {p.key: p.value for p in model.metadata_props}
    torch_backend = load_backend(trained_model)
    assert props["bits"] == "16" and props["model_fingerprint"] == torch_backend.fingerprint
    assert [i.name for i in model.graph.input] == ["image"]
    assert [o.name for o in model.graph.output] == ["code"]
    ir = ov.Core().read_model(str(exported / "encoder.xml"))
    assert ir.get_rt_info(["dnh", "model_fingerprint"]).astype(str) == torch_backend.fingerprint
    assert ir.input(0).get_partial_shape()[0].is_dynamic  # dynamic batch axis


def test_openvino_backend_hashes_and_searches_like_pytorch(exported: Path, trained_model: Path,
                                                            synthetic_dataset: Path, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (300, 28, 28), dtype=np.uint8)
    torch_backend, ov_backend = load_backend(trained_model), load_backend(exported / "encoder.xml")
    h_torch, h_ov = torch_backend.encode(images), ov_backend.encode(images)
    assert np.abs(h_torch - h_ov).max() < 1e-4
    fragile = np.abs(h_torch) < 1e-4
    assert ((h_torch >= 0) == (h_ov >= 0))[~fragile].all()
    db = tmp_path / "db"
    hash_into_db(HashConfig(model=exported / "encoder.xml", db=db, data=synthetic_dataset))
    queries = np.asarray(PreparedDataset.open(synthetic_dataset).split("query").images[:5])
    np.save(tmp_path / "q.npy", queries)
    found = {}
    for model in (exported / "encoder.xml", trained_model):  # the database accepts both models
        result = search(SearchConfig(model=model, db=db, queries=(tmp_path / "q.npy",), k=5))
        found[model.suffix] = [[hit["id"] for hit in q.results] for q in result.queries]
    assert found[".xml"] == found[".pt"]
    assert (codes_from_continuous(h_ov) == codes_from_continuous(h_torch)).mean() > 0.99
    one_by_one = np.concatenate([ov_backend.encode(images[i:i + 1]) for i in range(20)])
    assert np.array_equal(one_by_one, h_ov[:20])  # the batch-1 model a query runs on


def test_onnxruntime_backend_hashes_and_searches_like_pytorch(
        exported: Path, trained_model: Path, synthetic_dataset: Path, tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    images = np.random.default_rng(1).integers(0, 256, (300, 28, 28), dtype=np.uint8)
    torch_backend = load_backend(trained_model)
    ort_backend = load_backend(exported / "encoder.onnx", threads=1)
    assert (ort_backend.name, ort_backend.bits, ort_backend.fingerprint) == (
        "onnxruntime", torch_backend.bits, torch_backend.fingerprint)
    h_torch, h_ort = torch_backend.encode(images), ort_backend.encode(images)
    assert np.abs(h_torch - h_ort).max() < 1e-4 and ort_backend.encode(images[:0]).shape == (0, 16)
    db = tmp_path / "db"
    hash_into_db(HashConfig(model=trained_model, db=db, data=synthetic_dataset))
    np.save(tmp_path / "q.npy", images[:5])
    found = [[[hit["id"] for hit in q.results] for q in search(SearchConfig(
        model=model, db=db, queries=(tmp_path / "q.npy",), k=5)).queries]
        for model in (exported / "encoder.onnx", trained_model)]
    assert found[0] == found[1]
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"\x08\x01junk")
    with pytest.raises(ModelError):
        load_backend(garbage)


def test_bad_models_and_outputs(exported: Path, trained_model: Path, tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.xml"
    garbage.write_text("<net>not a model")
    with pytest.raises(ModelError):
        load_backend(garbage)
    with pytest.raises(OutputExistsError):
        export_model(ExportConfig(model=trained_model, out=exported))
    with pytest.raises(ModelError):
        export_model(ExportConfig(model=exported / "encoder.xml", out=tmp_path / "again"))
    assert not (tmp_path / "again").exists()


def test_int8_export_is_verified_and_benchmarked(trained_model: Path, synthetic_dataset: Path,
                                                 tmp_path: Path) -> None:
    pytest.importorskip("nncf")
    from dnhcli.bench.config import BenchmarkConfig
    from dnhcli.bench.infer import run_benchmark

    out = tmp_path / "int8"
    result = export_model(ExportConfig(model=trained_model, out=out, data=synthetic_dataset, int8=True,
                                       verify_count=300)).to_json()
    int8 = result["agreement"]["openvino_cpu_int8"]
    assert result["int8_xml"] == str(out / "encoder-int8.xml")
    assert result["int8_bit_agreement"] == int8["bits"]
    assert 0.9 < int8["bits"] <= 1.0 and result["bit_agreement"] == 1.0  # the f32 files stay exact
    ir = ov.Core().read_model(str(out / "encoder-int8.xml"))
    assert ir.get_rt_info(["dnh", "precision"]).astype(str) == "int8"
    assert load_backend(out / "encoder-int8.xml").fingerprint == load_backend(trained_model).fingerprint
    config = BenchmarkConfig(model=out / "encoder.xml", batches=(8,), threads=(1,), engines=("openvino",),
                             seconds=0.02, rounds=1, e2e_codes=0)
    report = run_benchmark(config).to_json()
    assert {r["label"] for r in report["rows"]} >= {"openvino latency sync int8", "openvino latency sync"}
    assert report["precision"]["bit_agreement"]["int8"] is not None
    assert report["openvino_int8"]["throughput_fps"] > 0
    bf16 = report["precision"]["bit_agreement"].get("bf16")  # None where the CPU has no BF16
    assert report["precision"]["default"] == ("bf16" if bf16 is not None and bf16 >= 0.999 else "f32")
