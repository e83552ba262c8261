"""`benchmark`: encoder speed on OpenVINO CPU, side by side with PyTorch eager, torch.compile
and ONNX Runtime in one run, the sign-bit agreement of each, and end-to-end query latency.

For every thread count and batch size, every engine's runners are built and warmed up, then
timed interleaved round by round (so that a busy machine slows all of them alike); a row's
figures pool its rounds. Names follow OpenVINO's benchmark_app: Count, Duration, Latency
median/average/min/max (ms) and Throughput (FPS = Count x batch / Duration).
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dnhcli.bench import engines as eng
from dnhcli.bench.config import BenchmarkConfig
from dnhcli.bench.e2e import end_to_end, random_database
from dnhcli.bench.report import BenchmarkReport, row_figures
from dnhcli.deploy.export import bit_agreement, sample_images
from dnhcli.errors import ModelError
from dnhcli.progress import ProgressFn, no_progress


@dataclass
class Artifacts:
    """The model in every form the engines need (the checkpoint and ONNX file may be absent)."""

    xml: Path
    onnx: Path | None
    checkpoint: Path | None
    notes: list[str] = field(default_factory=list)
    int8: Path | None = None  # encoder-int8.xml from `dnh export --int8`, timed when present


def validate(config: BenchmarkConfig) -> None:
    """Refuse a bad configuration, an unknown device or a --db that is not a database, before
    any work."""
    config.check()
    eng.check_device(config.device)
    if config.db is not None:
        from dnhcli.stores.hashdb import HashDB

        HashDB.open(config.db).close()  # a DataError now, not after minutes of timing


def resolve_model(config: BenchmarkConfig, scratch: Path) -> Artifacts:
    """The IR, ONNX file and checkpoint for a model path; a checkpoint is exported first."""
    from dnhcli.deploy.backends import OpenVINOBackend, TorchBackend, load_backend
    from dnhcli.manifest import read_json

    path = Path(config.model)
    if path.suffix == ".pt":
        from dnhcli.deploy.export import ExportConfig, export_model

        load_backend(path)  # a clear error for a missing or bad checkpoint
        result = export_model(ExportConfig(model=path, out=scratch / "export", verify_count=64))
        return Artifacts(result.openvino_xml, result.onnx, path,
                         ["the checkpoint was exported to OpenVINO IR and ONNX for this run"])
    backend = load_backend(path)
    if not isinstance(backend, OpenVINOBackend):
        raise ModelError(f"cannot benchmark {path}", hint="pass an encoder.xml or a .pt checkpoint")
    onnx, int8 = path.with_name("encoder.onnx"), path.with_name("encoder-int8.xml")
    artifacts = Artifacts(path, onnx if onnx.exists() else None, None,
                          int8=int8 if int8.exists() and int8 != path else None)
    manifest = path.with_name("manifest.json")
    source = Path(read_json(manifest, "export manifest").get("source", "")) if manifest.exists() else None
    if source is not None and source.is_file():
        if TorchBackend.load(source).fingerprint == backend.fingerprint:
            artifacts.checkpoint = source
        else:
            artifacts.notes.append(f"{source} has other weights than the IR: PyTorch is not measured")
    else:
        artifacts.notes.append("the IR's source checkpoint is not found: PyTorch is not measured")
    if artifacts.onnx is None:
        artifacts.notes.append("no encoder.onnx beside the IR: ONNX Runtime is not measured")
    return artifacts


def _engines(config: BenchmarkConfig, artifacts: Artifacts, notes: list[str]) -> tuple[str, ...]:
    chosen = []
    for name in config.engines:
        if name in ("pytorch", "torch-compile") and artifacts.checkpoint is None:
            continue
        if name == "onnxruntime" and (artifacts.onnx is None or not eng.onnxruntime_available()):
            if artifacts.onnx is not None:
                notes.append("onnxruntime is not installed: ONNX Runtime is not measured")
            continue
        chosen.append(name)
    return tuple(chosen)


def _batch_input(images: np.ndarray, batch: int) -> np.ndarray:
    """`batch` real images as the encoder's float32 input (N, 1, 28, 28), repeated if needed."""
    from dnhcli.deploy.backends import SCALE

    picked = images[np.arange(batch) % len(images)]
    return np.ascontiguousarray(picked[:, None], dtype=np.float32) * SCALE


def _runners(engines: tuple[str, ...], artifacts: Artifacts, openvino: eng.OpenVINOEngine,
             encoder: Any, x: np.ndarray, threads: int, precisions: tuple[str, ...],
             notes: list[str]) -> list[eng.Runner]:
    runners: list[eng.Runner] = []
    for precision in precisions:
        runners += openvino.runners(x, threads, precision)
    if artifacts.int8 is not None:
        runners += eng.OpenVINOEngine(artifacts.int8, openvino.device, tag="int8").runners(x, threads)
    if "pytorch" in engines:
        runners.append(eng.pytorch_runner(encoder, x, threads))
    if "torch-compile" in engines:
        try:
            runners.append(eng.compiled_runner(encoder, x, threads))
        except Exception as exc:  # noqa: BLE001 - inductor needs a C++ compiler: report, go on
            notes.append(f"torch.compile failed, not measured: {str(exc).splitlines()[0][:200]}")
    if "onnxruntime" in engines and artifacts.onnx is not None:
        runners.append(eng.onnxruntime_runner(artifacts.onnx, x, threads))
    return runners


def _agreement(runners: list[eng.Runner], images: np.ndarray, reference: np.ndarray) -> dict[str, Any]:
    """Sign-bit agreement of every runner with the reference codes, in the runner's batch size."""
    out = {}
    for runner in runners:
        if runner.infer is None or runner.mode != "sync" or runner.hint == "THROUGHPUT":
            continue
        count = -(-len(images) // runner.batch) * runner.batch
        x = _batch_input(images, count)
        codes = np.concatenate([runner.infer(x[i:i + runner.batch]) for i in range(0, count, runner.batch)])
        out[runner.label] = bit_agreement(reference, codes[:len(images)])
    return out


def _precisions(config: BenchmarkConfig, notes: list[str]) -> tuple[tuple[str, ...], dict[str, Any]]:
    """The precisions to time, and what the CPU offers."""
    capabilities = eng.cpu_capabilities(config.device)
    supported = {"f32": True, "bf16": "BF16" in capabilities}
    facts: dict[str, Any] = {"capabilities": capabilities, "supported": supported}
    timed = tuple(p for p in config.precisions if supported[p])
    for p in config.precisions:
        if not supported[p]:
            notes.append(f"the {config.device} lacks {p} (OPTIMIZATION_CAPABILITIES: "
                         f"{', '.join(capabilities)}): a {p} hint runs f32, so {p} is not timed")
    return timed, facts


def run_benchmark(config: BenchmarkConfig, progress: ProgressFn = no_progress) -> BenchmarkReport:
    """Run every configuration and return the report (nothing is written outside a scratch
    folder, which is removed)."""
    import torch

    validate(config)
    started = time.perf_counter()
    before = torch.get_num_threads()
    with tempfile.TemporaryDirectory(prefix="dnh-benchmark-") as scratch:
        artifacts = resolve_model(config, Path(scratch))
        notes = list(artifacts.notes)
        engines = _engines(config, artifacts, notes)
        precisions, precision_facts = _precisions(config, notes)
        openvino = eng.OpenVINOEngine(artifacts.xml, config.device)
        images = sample_images(config.data, config.agreement_images)
        encoder, reference, reference_name = None, None, "openvino f32"
        if artifacts.checkpoint is not None:
            from dnhcli.deploy.backends import TorchBackend

            torch_backend = TorchBackend.load(artifacts.checkpoint)
            encoder, reference, reference_name = torch_backend.runner, torch_backend.encode(images), "pytorch"
        rows: list[dict[str, Any]] = []
        agreement: dict[str, Any] = {}
        total = len(config.threads) * len(config.batches) * config.rounds
        done = 0
        for threads in config.threads:
            for batch in sorted(config.batches):
                x = _batch_input(images, batch)
                runners = _runners(engines, artifacts, openvino, encoder, x, threads, precisions, notes)
                if reference is None:
                    single = openvino.compile(1, threads, "LATENCY", "f32")
                    reference = np.concatenate([single(_batch_input(images[i:i + 1], 1))[0]
                                                for i in range(len(images))])
                if batch == max(config.batches):
                    for label, figures in _agreement(runners, images, reference).items():
                        worst = agreement.get(label)
                        if worst is None or figures["flipped_bits"] > worst["flipped_bits"]:
                            agreement[label] = figures
                for runner in runners:
                    eng.warm(runner)
                timings = {id(r): eng.Timing() for r in runners}
                for _ in range(config.rounds):
                    for runner in runners:
                        timings[id(runner)].add(runner.run(config.seconds / config.rounds))
                    done += 1
                    progress("benchmark", done, total, f"{threads} thread(s), batch {batch}")
                rows += [row_figures(r, timings[id(r)]) for r in runners]
                del runners
        e2e = _end_to_end(config, artifacts, images, Path(scratch), progress)
    torch.set_num_threads(before)
    return BenchmarkReport(model=str(Path(config.model).absolute()), device=config.device,
                           config=config, rows=rows, agreement=agreement, reference=reference_name,
                           precision=precision_facts, end_to_end=e2e, notes=notes,
                           seconds=time.perf_counter() - started)


def _end_to_end(config: BenchmarkConfig, artifacts: Artifacts, images: np.ndarray, scratch: Path,
                progress: ProgressFn) -> list[dict[str, Any]]:
    """Hash + search latency per backend and thread count: OpenVINO, and PyTorch and ONNX
    Runtime when they are measured (each through the backend `dnh search` would use)."""
    from dnhcli.deploy.backends import load_backend

    if config.e2e_codes == 0 and config.db is None:
        return []
    paths = [artifacts.xml]  # the model files whose backends `dnh search` would use
    if artifacts.checkpoint is not None and "pytorch" in config.engines:
        paths.append(artifacts.checkpoint)
    if artifacts.onnx is not None and "onnxruntime" in config.engines and eng.onnxruntime_available():
        paths.append(artifacts.onnx)
    out = []
    db_path = config.db
    steps = len(config.threads) * len(paths)
    for t_index, threads in enumerate(config.threads):
        for p_index, path in enumerate(paths):
            backend = load_backend(path, threads)  # by suffix: .xml, .pt or .onnx
            if db_path is None:
                progress("end-to-end database", 0, 1, f"{config.e2e_codes:,} random codes")
                db_path = random_database(scratch / "e2e-db", backend, config.e2e_codes, config.seed)
                progress("end-to-end database", 1, 1)
            figures = end_to_end(backend, db_path, images, threads, config.e2e_queries, config.e2e_k)
            out.append(figures.to_json())
            progress("end to end", t_index * len(paths) + p_index + 1, steps)
    return out
