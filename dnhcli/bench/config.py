"""What one `dnh benchmark` run measures: `BenchmarkConfig`, and the engines and precisions it
knows (no numpy or engine imports here: the command line reads them for its help)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from dnhcli.errors import InputError

ENGINES = ("openvino", "pytorch", "torch-compile", "onnxruntime")
PRECISIONS = ("f32", "bf16")


@dataclass(frozen=True)
class BenchmarkConfig:
    """One benchmark run: the model, the engines, batch sizes, threads and precisions to time."""

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

    def check(self) -> None:
        """Raise InputError for engines, precisions, sizes or counts the benchmark cannot run."""
        unknown = [e for e in self.engines if e not in ENGINES]
        if unknown or not self.engines:
            raise InputError(f"unknown engine {unknown[0] if unknown else '(none)'}",
                             hint=f"choose from {', '.join(ENGINES)}")
        if "openvino" not in self.engines:
            raise InputError("the benchmark needs the openvino engine (the others are compared with it)")
        bad = [p for p in self.precisions if p not in PRECISIONS]
        if bad or "f32" not in self.precisions:
            raise InputError(f"--precision takes f32 and optionally bf16, got {','.join(self.precisions)}")
        if min(self.batches, default=0) < 1 or min(self.threads, default=0) < 1:
            raise InputError("batch sizes and thread counts must be positive integers")
        if self.seconds <= 0 or self.rounds < 1:
            raise InputError("--seconds must be positive and --rounds at least 1")
        if self.e2e_codes < 0 or self.e2e_queries < 1 or self.e2e_k < 1:
            raise InputError("--e2e-codes must be >= 0, --e2e-queries and --e2e-k >= 1")
