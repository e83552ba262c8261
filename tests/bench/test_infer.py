"""`dnh benchmark` core: a short configuration runs every engine, and the report holds
benchmark_app's figures, the agreement of every engine and end-to-end latency (no timing
assertions: only structure and values that do not depend on speed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dnhcli.bench import engines as eng
from dnhcli.bench.config import BenchmarkConfig
from dnhcli.bench.e2e import end_to_end, random_database
from dnhcli.bench.infer import run_benchmark
from dnhcli.bench.report import BenchmarkReport
from dnhcli.deploy.backends import load_backend
from dnhcli.errors import DnhError, InputError, ModelError

SHORT = {"seconds": 0.02, "rounds": 2, "e2e_codes": 3000, "e2e_queries": 10}


def _check_row(row: dict) -> None:
    lat = row["latency_ms"]
    assert row["count"] > 0 and row["duration_ms"] > 0 and row["throughput_fps"] > 0
    assert lat["min"] <= lat["median"] <= lat["max"] and lat["min"] <= lat["average"] <= lat["max"]
    assert row["throughput_fps"] == pytest.approx(row["count"] * row["batch"] / row["duration_ms"] * 1e3,
                                                  rel=1e-3)


def test_short_benchmark_of_an_export(exported: Path, synthetic_dataset: Path) -> None:
    config = BenchmarkConfig(model=exported / "encoder.xml", batches=(1, 8), threads=(1,),
                             engines=("openvino", "pytorch", "onnxruntime"), data=synthetic_dataset, **SHORT)
    has_ort = eng.onnxruntime_available()
    seen: list[tuple[str, int, int]] = []
    report = run_benchmark(config, lambda stage, done, total, info="": seen.append((stage, done, total)))
    result = report.to_json()
    assert ("benchmark", 4, 4) in seen
    # What is timed follows what this CPU reports, never a constant: 4 OpenVINO configurations
    # (2 hints x sync/async) per precision the device offers (f32, and bf16 where it has BF16),
    # then PyTorch and ONNX Runtime, for each batch size.
    supported = result["precision"]["supported"]
    assert supported == {"f32": True, "bf16": "BF16" in result["precision"]["capabilities"]}
    timed = [p for p in ("f32", "bf16") if supported[p]]
    assert len(result["rows"]) == 2 * (4 * len(timed) + (2 if has_ort else 1))
    assert {r["precision"] for r in result["rows"] if r["engine"] == "openvino"} == set(timed)
    for row in result["rows"]:
        _check_row(row)
    assert {r["label"] for r in result["rows"]} >= {"openvino latency sync", "openvino throughput async",
                                                    "pytorch", *(["onnxruntime"] if has_ort else [])}
    if not has_ort:
        assert result["onnxruntime"] is None and any("onnxruntime" in n for n in result["notes"])
    for engine in ("openvino", "pytorch", "onnxruntime")[:3 if has_ort else 2]:
        assert result[engine]["throughput_fps"] > 0 and result[engine]["latency_ms"]["median"] > 0
        assert result[engine]["latency_at"]["batch"] == 1
    assert result["torch_compile"] is None
    default = result["precision"]["default"]  # the summary's precision: bf16 only if it agrees
    ov_best = max(r["throughput_fps"] for r in result["rows"]
                  if r["engine"] == "openvino" and r["precision"] == default)
    assert result["openvino"]["throughput_fps"] == ov_best
    assert result["ratios"]["openvino_over_pytorch_throughput"] == pytest.approx(
        ov_best / result["pytorch"]["throughput_fps"], rel=1e-2)
    # the trained model's bits agree exactly on every f32 engine, against PyTorch; bf16 (where the
    # CPU has it) may flip a few, is reported, and becomes the default only above the goal
    assert result["agreement_reference"] == "pytorch"
    f32 = {label: a for label, a in result["agreement"].items() if not label.endswith("bf16")}
    assert {a["flipped_bits"] for a in f32.values()} == {0}
    assert result["precision"]["bit_agreement"]["f32"] == 1.0
    if supported["bf16"]:
        bf16 = result["precision"]["bit_agreement"]["bf16"]
        assert 0.0 <= bf16 <= 1.0 and any(label.endswith("bf16") for label in result["agreement"])
        assert default == ("bf16" if bf16 >= 0.999 else "f32")
    else:
        assert default == "f32" and any("bf16" in n for n in result["notes"])
    e2e = {row["backend"]: row for row in result["end_to_end"]}
    assert set(e2e) == {"openvino", "pytorch", *(["onnxruntime"] if has_ort else [])}
    for row in e2e.values():
        assert row["db_codes"] == 3000 and row["queries"] == 10
        assert row["latency_ms"]["median"] <= row["latency_ms"]["p99"]
    assert result["format"] == "dnh-benchmark" and result["versions"]["openvino"]


def test_checkpoint_is_exported_for_the_run_and_torch_compile_agrees(trained_model: Path) -> None:
    before = sorted(p.name for p in trained_model.parent.iterdir())
    config = BenchmarkConfig(model=trained_model, batches=(16,), threads=(1,),
                             engines=("openvino", "torch-compile"), precisions=("f32",), **SHORT)
    result = run_benchmark(config).to_json()
    assert sorted(p.name for p in trained_model.parent.iterdir()) == before  # nothing written
    labels = [r["label"] for r in result["rows"]]
    assert labels.count("torch-compile") == 1 and "pytorch" not in labels
    assert result["agreement"]["torch-compile"]["flipped_bits"] == 0
    assert result["end_to_end"][0]["backend"] == "openvino"


def test_bad_configurations_fail_before_any_work(exported: Path, tmp_path: Path) -> None:
    xml = exported / "encoder.xml"
    with pytest.raises(InputError, match="unknown OpenVINO device 'NPU9'"):
        run_benchmark(BenchmarkConfig(model=xml, device="NPU9"))
    with pytest.raises(InputError, match="unknown engine"):
        run_benchmark(BenchmarkConfig(model=xml, engines=("openvino", "tensorflow")))
    with pytest.raises(InputError):
        run_benchmark(BenchmarkConfig(model=xml, precisions=("bf16",)))
    with pytest.raises(InputError):
        run_benchmark(BenchmarkConfig(model=xml, engines=("pytorch",)))
    with pytest.raises(ModelError):
        run_benchmark(BenchmarkConfig(model=tmp_path / "missing.xml"))
    garbage = tmp_path / "garbage.xml"
    garbage.write_text("<net>")
    with pytest.raises(ModelError):
        run_benchmark(BenchmarkConfig(model=garbage))


def test_end_to_end_refuses_a_database_of_another_model(exported: Path, trained_model: Path,
                                                        tmp_path: Path) -> None:
    backend = load_backend(exported / "encoder.xml")
    db = random_database(tmp_path / "db", backend, 500, seed=1)
    images = np.random.default_rng(0).integers(0, 256, (4, 28, 28), dtype=np.uint8)
    result = end_to_end(backend, db, images, threads=1, queries=5, k=3).to_json()
    assert result["db_codes"] == 500 and result["queries"] == 5
    other = type(backend)(path=backend.path, bits=backend.bits, fingerprint="0" * 64, runner=backend.runner)
    with pytest.raises(DnhError):
        end_to_end(other, db, images, threads=1, queries=5)


def test_timed_loop_counts_every_call() -> None:
    calls = []
    timing = eng.timed_loop(lambda: calls.append(1), 0.001)
    assert len(timing.latencies) == len(calls) >= 1 and timing.duration > 0


def test_summary_prefers_best_throughput_and_the_smallest_sync_batch() -> None:
    def row(engine: str, batch: int, fps: float, median: float, mode: str = "sync") -> dict:
        return {"engine": engine, "label": engine, "hint": None, "mode": mode, "precision": "f32",
                "batch": batch, "threads": 2, "requests": 1, "count": 1, "duration_ms": 1.0,
                "latency_ms": {"median": median, "average": median, "min": median, "max": median},
                "throughput_fps": fps}

    rows = [row("openvino", 1, 100.0, 0.5), row("openvino", 1, 300.0, 0.1, "async"),
            row("openvino", 64, 1000.0, 9.0), row("pytorch", 1, 10.0, 2.0), row("pytorch", 64, 250.0, 50.0)]
    report = BenchmarkReport(model="m", device="CPU", config=BenchmarkConfig(model=Path("m")), rows=rows,
                             agreement={}, reference="pytorch", precision={"capabilities": []})
    result = report.to_json()
    assert result["openvino"]["throughput_fps"] == 1000.0
    assert result["openvino"]["latency_ms"]["median"] == 0.5  # sync at batch 1, not the async row
    assert result["ratios"] == {"openvino_over_pytorch_throughput": 4.0, "pytorch_over_openvino_latency": 4.0}
    assert result["summary_threads"] == 2 and result["onnxruntime"] is None
