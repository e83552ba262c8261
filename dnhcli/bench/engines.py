"""The inference engines `dnh benchmark` times: OpenVINO CPU, PyTorch eager, torch.compile
and ONNX Runtime, each prepared for one batch size and thread count.

Every engine gives `Runner`s. A runner runs the encoder on one fixed float32 batch
(N, 1, 28, 28), over and over for a given time, and returns the latency of every inference;
model loading and compilation happen before, in the engine, and are never timed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dnhcli.bench.config import ENGINES as ENGINES
from dnhcli.bench.config import PRECISIONS as PRECISIONS
from dnhcli.errors import InputError

HINTS = ("LATENCY", "THROUGHPUT")


@dataclass
class Timing:
    """Latencies (seconds) of the inferences that completed within `duration` seconds."""

    latencies: list[float] = field(default_factory=list)
    duration: float = 0.0

    def add(self, other: Timing) -> None:
        self.latencies.extend(other.latencies)
        self.duration += other.duration


@dataclass
class Runner:
    """One timed configuration: `run(seconds)` infers the same batch until the time is up."""

    engine: str
    batch: int
    threads: int
    run: Callable[[float], Timing] = field(repr=False)
    mode: str = "sync"  # "sync": one request at a time; "async": an AsyncInferQueue
    hint: str | None = None  # OpenVINO's PERFORMANCE_HINT
    precision: str = "f32"  # the precision inference actually runs in
    requests: int = 1  # requests in flight
    infer: Callable[[np.ndarray], np.ndarray] | None = field(default=None, repr=False)

    @property
    def label(self) -> str:
        parts = [self.engine] + ([self.hint.lower(), self.mode] if self.hint else [])
        return " ".join(parts) + ("" if self.precision == "f32" else f" {self.precision}")


def timed_loop(call: Callable[[], Any], seconds: float) -> Timing:
    """Call `call` until `seconds` have passed; the latency of every call."""
    latencies = []
    clock = time.perf_counter
    start = clock()
    end = start + seconds
    while True:
        tick = clock()
        call()
        tock = clock()
        latencies.append(tock - tick)
        if tock >= end:
            return Timing(latencies, tock - start)


def warm(runner: Runner, seconds: float = 0.1) -> None:
    """Run a runner briefly so that first-call costs (allocation, kernel selection) are paid."""
    runner.run(seconds)


def _looping(call: Callable[[], Any]) -> Callable[[float], Timing]:
    return lambda seconds: timed_loop(call, seconds)


def _first_output(compiled: Any) -> Callable[[np.ndarray], np.ndarray]:
    return lambda x: compiled(x)[0]


# ---- OpenVINO -----------------------------------------------------------------------------
def openvino_devices() -> list[str]:
    import openvino as ov

    return list(ov.Core().available_devices)


def check_device(device: str) -> str:
    """The device name if this machine's OpenVINO has it, else an InputError naming them."""
    devices = openvino_devices()
    if device not in devices:
        raise InputError(f"unknown OpenVINO device {device!r}; this machine has: {', '.join(devices)}",
                         hint="pass --device CPU")
    return device


def cpu_capabilities(device: str = "CPU") -> list[str]:
    import openvino as ov

    return [str(c) for c in ov.Core().get_property(device, "OPTIMIZATION_CAPABILITIES")]


class OpenVINOEngine:
    """An IR file compiled per (hint, precision, threads) for one static batch size."""

    def __init__(self, xml: Path, device: str = "CPU", tag: str | None = None) -> None:
        import openvino as ov

        self.ov = ov
        self.core = ov.Core()
        self.xml = xml
        self.device = check_device(device)
        self.tag = tag  # the precision its runners report instead of the compiled one ("int8")

    def compile(self, batch: int, threads: int, hint: str, precision: str) -> Any:
        model = self.core.read_model(str(self.xml))
        model.reshape([batch, 1, 28, 28])  # a static shape, as benchmark_app's -shape
        return self.core.compile_model(model, self.device, {
            "PERFORMANCE_HINT": hint, "INFERENCE_NUM_THREADS": threads,
            "INFERENCE_PRECISION_HINT": precision})

    def runners(self, x: np.ndarray, threads: int, precision: str = "f32") -> list[Runner]:
        """Sync and async runners for both hints. A runner's `precision` is the one the
        compiled model reports, which is f32 when the CPU lacks the requested one."""
        out = []
        for hint in HINTS:
            compiled = self.compile(len(x), threads, hint, precision)
            used = self.tag or compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()
            nireq = int(compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))
            request = compiled.create_infer_request()
            request.set_input_tensor(self.ov.Tensor(x))
            common: dict[str, Any] = {"engine": "openvino", "batch": len(x), "threads": threads, "hint": hint,
                      "precision": used}
            out.append(Runner(mode="sync", run=_looping(request.infer), infer=_first_output(compiled),
                              **common))
            out.append(Runner(mode="async", requests=nireq, run=self._async(compiled, x, nireq), **common))
        return out

    def _async(self, compiled: Any, x: np.ndarray, nireq: int) -> Callable[[float], Timing]:
        queue = self.ov.AsyncInferQueue(compiled, nireq)
        for request in queue:
            request.set_input_tensor(self.ov.Tensor(x))
        latencies: list[float] = []
        queue.set_callback(lambda request, _: latencies.append(request.latency / 1e3))

        def run(seconds: float) -> Timing:
            latencies.clear()
            start = time.perf_counter()
            while time.perf_counter() - start < seconds:
                queue.start_async()
            queue.wait_all()
            return Timing(list(latencies), time.perf_counter() - start)

        return run


# ---- PyTorch ------------------------------------------------------------------------------
def _torch_runner(engine: str, module: Any, x: np.ndarray, threads: int) -> Runner:
    import torch

    xt = torch.from_numpy(x).contiguous(memory_format=torch.channels_last)

    def call() -> Any:
        with torch.inference_mode():
            return module(xt)

    def infer(a: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return module(torch.from_numpy(a).contiguous(memory_format=torch.channels_last)).numpy()

    return Runner(engine=engine, batch=len(x), threads=threads, run=_looping(call),
                  infer=infer)


def pytorch_runner(encoder: Any, x: np.ndarray, threads: int) -> Runner:
    """PyTorch eager, channels-last (the layout `dnh hash` uses)."""
    import torch

    torch.set_num_threads(threads)
    return _torch_runner("pytorch", encoder, x, threads)


def compiled_runner(encoder: Any, x: np.ndarray, threads: int) -> Runner:
    """`torch.compile` (inductor) with weight freezing, for this static batch size and thread
    count (inductor bakes the thread count into the generated code, so each gets its own)."""
    import torch
    import torch._inductor.config as inductor

    torch.set_num_threads(threads)
    inductor.freezing = True
    torch._dynamo.reset()
    module = torch.compile(encoder, dynamic=False)
    runner = _torch_runner("torch-compile", module, x, threads)
    runner.run(0.0)  # compiles here, outside any timing
    return runner


# ---- ONNX Runtime -------------------------------------------------------------------------
def onnxruntime_available() -> bool:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def onnxruntime_runner(onnx_path: Path, x: np.ndarray, threads: int) -> Runner:
    """ONNX Runtime's CPU provider with all graph optimisations and `threads` intra-op threads."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
    feed = {"image": x}
    return Runner(engine="onnxruntime", batch=len(x), threads=threads,
                  run=_looping(lambda: session.run(None, feed)),
                  infer=lambda a: session.run(None, {"image": a})[0])
