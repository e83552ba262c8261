"""The `dnh benchmark` report: one row per timed configuration, a summary per engine, ratios
between engines, bit agreement and end-to-end latency; `to_json()` is the `--json` document."""

from __future__ import annotations

import os
import platform
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from dnhcli.bench.engines import Runner, Timing
from dnhcli.manifest import package_versions

if TYPE_CHECKING:
    from dnhcli.bench.config import BenchmarkConfig

FORMAT = "dnh-benchmark"
FORMAT_VERSION = 1
SUMMARY_KEYS = {"openvino": "openvino", "pytorch": "pytorch", "torch-compile": "torch_compile",
                "onnxruntime": "onnxruntime"}
AGREEMENT_GOAL = 0.999
OTHER_PRECISIONS = ("bf16", "int8")  # label suffixes of OpenVINO rows not in f32


def row_figures(runner: Runner, timing: Timing) -> dict[str, Any]:
    """benchmark_app's figures for one runner's pooled timing."""
    ms = np.asarray(timing.latencies) * 1e3
    count = len(ms)
    return {"engine": runner.engine, "label": runner.label, "hint": runner.hint, "mode": runner.mode,
            "precision": runner.precision, "batch": runner.batch, "threads": runner.threads,
            "requests": runner.requests, "count": count, "duration_ms": round(timing.duration * 1e3, 2),
            "latency_ms": {"median": round(float(np.median(ms)), 4) if count else None,
                           "average": round(float(ms.mean()), 4) if count else None,
                           "min": round(float(ms.min()), 4) if count else None,
                           "max": round(float(ms.max()), 4) if count else None},
            "throughput_fps": round(count * runner.batch / timing.duration, 1) if timing.duration else 0.0}


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


@dataclass
class BenchmarkReport:
    model: str
    device: str
    config: BenchmarkConfig
    rows: list[dict[str, Any]]
    agreement: dict[str, dict[str, Any]]
    reference: str
    precision: dict[str, Any]
    end_to_end: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def precision_agreement(self, precision: str) -> float | None:
        """The worst bit agreement of OpenVINO at a precision (labels end in it unless f32)."""
        def of(label: str) -> str:
            last = label.split()[-1]
            return last if last in OTHER_PRECISIONS else "f32"

        figures = [a["bits"] for label, a in self.agreement.items()
                   if label.startswith("openvino") and of(label) == precision]
        return min(figures) if figures else None

    @property
    def default_precision(self) -> str:
        """bf16 when the CPU has it and its bits agree with PyTorch's to the goal, else f32."""
        bf16 = self.precision_agreement("bf16")
        return "bf16" if bf16 is not None and bf16 >= AGREEMENT_GOAL else "f32"

    def summary(self, engine: str, threads: int, precision: str | None = None) -> dict[str, Any] | None:
        """Best throughput over the engine's rows, and its latency at the smallest batch."""
        precision = precision or (self.default_precision if engine == "openvino" else "f32")
        rows = [r for r in self.rows if r["engine"] == engine and r["threads"] == threads
                and r["precision"] == precision]
        if not rows:
            return None
        best = max(rows, key=lambda r: r["throughput_fps"])
        smallest = min(r["batch"] for r in rows)
        fastest = min((r for r in rows if r["batch"] == smallest and r["mode"] == "sync"),
                      key=lambda r: r["latency_ms"]["median"])
        return {"throughput_fps": best["throughput_fps"], "latency_ms": fastest["latency_ms"],
                "threads": threads, "precision": precision,
                "throughput_at": {k: best[k] for k in ("batch", "hint", "mode", "requests")},
                "latency_at": {k: fastest[k] for k in ("batch", "hint", "mode")}}

    def _by_threads(self, threads: int) -> dict[str, Any]:
        out: dict[str, Any] = {key: self.summary(engine, threads) for engine, key in SUMMARY_KEYS.items()}
        out["openvino_int8"] = self.summary("openvino", threads, "int8")  # an encoder-int8.xml beside
        ratios: dict[str, float] = {}
        for name in ("openvino", "openvino_int8"):
            ov = out[name]
            for key in ("pytorch", "torch_compile", "onnxruntime"):
                other = out[key]
                if ov is None or other is None:
                    continue
                ratios[f"{name}_over_{key}_throughput"] = round(
                    ov["throughput_fps"] / other["throughput_fps"], 3)
                ratios[f"{key}_over_{name}_latency"] = round(
                    other["latency_ms"]["median"] / ov["latency_ms"]["median"], 3)
        out["ratios"] = ratios
        return out

    def to_json(self) -> dict[str, Any]:
        threads = sorted({r["threads"] for r in self.rows})
        by_threads = {str(t): self._by_threads(t) for t in threads}
        top = by_threads[str(max(threads))] if threads else {}
        config = {k: (str(v) if v is not None and k in ("model", "data", "db") else v)
                  for k, v in asdict(self.config).items()}
        return {"format": FORMAT, "format_version": FORMAT_VERSION, "model": self.model,
                "device": self.device, **top, "summary_threads": max(threads) if threads else None,
                "by_threads": by_threads,
                "precision": {**self.precision, "default": self.default_precision,
                              "bit_agreement": {p: self.precision_agreement(p)
                                                for p in ("f32", *OTHER_PRECISIONS)}},
                "agreement": self.agreement, "agreement_reference": self.reference,
                "rows": self.rows, "end_to_end": self.end_to_end, "notes": self.notes,
                "machine": {"cpu": cpu_name(), "cores": os.cpu_count()},
                "versions": package_versions(), "config": config, "seconds": round(self.seconds, 2)}
