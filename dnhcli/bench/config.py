"""What one `dnh benchmark` run measures: `BenchmarkConfig`, and the engines and precisions it
knows (no numpy or engine imports here: the command line reads them for its help)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

ENGINES = ("openvino", "pytorch", "torch-compile", "onnxruntime")
PRECISIONS = ("f32", "bf16")


@dataclass(frozen=True)
class BenchmarkConfig:
    model: Path  # an encoder.xml from `dnh export`, or a `dnh train` checkpoint (exported first)
    batches: tuple[int, ...] = (1, 64, 1024)
    threads: tuple[int, ...] = (1, 2)
    engines: tuple[str, ...] = ENGINES
    precisions: tuple[str, ...] = PRECISIONS
    device: str = "CPU"
    seconds: float = 1.0  # timed per row, split over the rounds
    rounds: int = 3
    data: Path | None = None  # input and agreement images: this dataset's val split
    agreement_images: int = 2000
    e2e_codes: int = 1_000_000  # 0: no end-to-end measurement
    e2e_queries: int = 1000
    e2e_k: int = 10
    db: Path | None = None  # search this database end to end instead of random codes
    seed: int = 0
