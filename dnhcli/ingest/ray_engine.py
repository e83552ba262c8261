"""The Ray engine: planned units decoded and hashed by a Ray Data actor pool, one encoder per
worker, results streamed back in order to the one writer (this process).

Each worker gets the model file's bytes (so it may run on another machine), loads it once on
the engine the file names (PyTorch, OpenVINO or ONNX Runtime, as `--engine local` does, so
the codes are the same) with an explicit thread count: Ray's own threading settings reach
PyTorch through OMP_NUM_THREADS but not ONNX Runtime or OpenVINO. A worker that dies is
restarted and its batch retried by Ray; an image that cannot be read comes back as a failure
row. Input files must be readable at the same path on every node (a shared mount); PACS
instances are fetched by the workers themselves.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import re
import signal
import tempfile
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import chain, islice
from pathlib import Path
from typing import Any

import numpy as np

from dnhcli.errors import DataError, InputError
from dnhcli.ingest.decode import Decoded, Decoder, Failure, keep_freed_memory
from dnhcli.ingest.local import Encoded, encode_decoded
from dnhcli.ingest.plan import Unit

KILL_ENV = "DNH_INGEST_KILL_MARKER"  # test hook: the first worker to find this file deletes it and dies
WORKER_FOLDERS = Path(tempfile.gettempdir()) / "dnh-ray-workers"  # <pid>/: a worker's copy of the model
NATIVE_LINE = re.compile(rb"^\[\d{4}-\d\d-\d\d [\d:,]+ [IWEF] \d+ \d+\] ")  # Ray's C++ log lines


@dataclass(frozen=True)
class RaySettings:
    """`workers` actors with `threads` encoder threads each; `address` joins a running
    cluster (`auto`, `ray://host:10001`, or None for a local Ray on this machine)."""

    workers: int = 2
    threads: int = 1
    address: str | None = None
    window: int = 20_000  # units per Ray dataset: bounds the driver's memory
    units_per_task: int = 32  # 8 left workers idle a third of the time between tasks (BENCHMARKS)


def clean_worker_folders() -> None:
    """Remove the model copies of workers that have exited (Ray ends actors without running
    their clean-up), on this machine."""
    import shutil

    if not WORKER_FOLDERS.is_dir():
        return
    for folder in WORKER_FOLDERS.iterdir():
        try:
            os.kill(int(folder.name), 0)
        except (ValueError, ProcessLookupError):
            shutil.rmtree(folder, ignore_errors=True)
        except PermissionError:
            pass  # another user's live process


def model_files(path: Path) -> dict[str, bytes]:
    """The model's file(s) by name: a checkpoint, an ONNX file, or an IR's .xml and .bin."""
    files = {path.name: path.read_bytes()}
    if path.suffix == ".xml":
        weights = path.with_suffix(".bin")
        if weights.is_file():
            files[weights.name] = weights.read_bytes()
    return files


class EncoderWorker:
    """A Ray Data actor: decodes a batch of units and encodes their images."""

    def __init__(self, files: dict[str, bytes], name: str, fingerprint: str, threads: int, side: int,
                 source: str | None, kill_marker: str | None) -> None:
        from dnhcli.deploy.backends import load_backend

        keep_freed_memory()
        clean_worker_folders()
        self.folder = WORKER_FOLDERS / str(os.getpid())
        self.folder.mkdir(parents=True, exist_ok=True)
        for file_name, data in files.items():
            Path(self.folder, file_name).write_bytes(data)
        if name.endswith(".pt"):
            import torch

            torch.set_num_threads(threads)
        self.backend = load_backend(Path(self.folder, name), threads)
        if self.backend.fingerprint != fingerprint:
            raise DataError("a Ray worker loaded another model than the driver's")
        self.decoder = Decoder(side, source)
        self.kill_marker = kill_marker

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self.kill_marker:
            try:
                os.unlink(self.kill_marker)
                os.kill(os.getpid(), signal.SIGKILL)
            except FileNotFoundError:
                pass
        decoded: list[Decoded] = []
        failures: list[Failure] = []
        for text in batch["unit"]:
            unit = Unit.from_json(str(text))
            result = self.decoder.attempt(unit)  # the driver stops the run or skips, as asked
            if isinstance(result, Failure):
                failures.append(result)
            else:
                decoded.append(result)
        encoded = encode_decoded(decoded, failures, self.backend, self.backend.bits)
        rows = len(encoded.codes) + len(failures)
        codes = np.zeros((rows, encoded.codes.shape[1]), np.uint8)
        codes[:len(encoded.codes)] = encoded.codes
        vectors = np.zeros((rows, encoded.vectors.shape[1]), np.int8)
        vectors[:len(encoded.vectors)] = encoded.vectors
        meta = [json.dumps(m) for m in encoded.metadata] + [json.dumps(f.to_json()) for f in failures]
        return {"codes": codes, "vectors": vectors, "meta": np.array(meta, dtype=object),
                "ok": np.arange(rows) < len(encoded.codes),
                "replanned": np.concatenate([encoded.replanned, np.zeros(len(failures), np.bool_)])}


def run_ray(units: Iterable[Unit], model: Path, fingerprint: str, bits: int, side: int, source: str | None,
            settings: RaySettings) -> Iterator[Encoded]:
    """Batches of whole units hashed by the actor pool, in the order of `units` (Ray is not
    started when there is nothing to hash)."""
    stream = iter(units)
    first = next(stream, None)
    if first is None:
        return
    stream = chain([first], stream)
    ray, started = start_ray(settings)
    try:
        import ray.data

        logging.getLogger("ray.data").setLevel(logging.ERROR)
        _raylet_messages_to_stderr()
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False
        context.print_on_execution_start = False
        context.execution_options.preserve_order = True  # the same ids as --engine local
        constructor = {"files": model_files(model), "name": model.name, "fingerprint": fingerprint,
                       "threads": settings.threads, "side": side, "source": source,
                       "kill_marker": os.environ.get(KILL_ENV)}
        while window := list(islice(stream, settings.window)):
            blocks = math.ceil(len(window) / settings.units_per_task)
            dataset = ray.data.from_items([{"unit": unit.to_json()} for unit in window],
                                          override_num_blocks=blocks)
            # Ray Data restarts a dead actor and retries its batch (max_restarts=-1 by default)
            dataset = dataset.map_batches(
                EncoderWorker, fn_constructor_kwargs=constructor, batch_size=settings.units_per_task,
                compute=ray.data.ActorPoolStrategy(size=min(settings.workers, blocks)),
                num_cpus=settings.threads, batch_format="numpy")
            with _without_native_lines():
                for batch in dataset.iter_batches(batch_size=None, batch_format="numpy"):
                    yield _encoded(batch, bits)
    finally:
        if started:
            ray.shutdown()
        clean_worker_folders()


def _check_reachable(address: str) -> None:
    """Refuse a cluster address nothing answers at (Ray itself would retry for many minutes)."""
    import socket
    from urllib.parse import urlsplit

    if address == "auto":
        return
    parts = urlsplit(address if "://" in address else f"ray://{address}")
    try:
        host, port = parts.hostname, parts.port or (10001 if address.startswith("ray://") else 6379)
    except ValueError:
        raise InputError(f"bad Ray address {address!r}",
                         hint="give auto, HOST:PORT or ray://HOST:PORT") from None
    try:
        socket.create_connection((host or "127.0.0.1", port), timeout=5).close()
    except OSError as exc:
        raise DataError(f"no Ray cluster answers at {address}: {exc.strerror or exc}",
                        hint="start one with `ray start --head`, or leave out --address to run Ray "
                             "on this machine") from None


def _raylet_messages_to_stderr() -> None:
    """Ray prints its cluster's messages (a worker died and its task is retried, say) on the
    driver's stdout, where `--json` writes its document: send them to stderr."""
    from ray._private import worker

    original = getattr(worker, "print_to_stdstream", None)
    if original is None or getattr(original, "dnh_stderr", False):
        return

    def to_stderr(data: dict[str, Any], ignore_prefix: bool) -> None:
        original({**data, "is_err": True}, ignore_prefix)

    to_stderr.dnh_stderr = True  # type: ignore[attr-defined]
    worker.print_to_stdstream = to_stderr


@contextlib.contextmanager
def _without_native_lines() -> Iterator[None]:
    """Ray's C++ core writes log lines (an actor's restart policy, say) straight to this
    process's stderr: pass everything else through, those lines not."""
    read_end, write_end = os.pipe()
    saved = os.dup(2)
    os.dup2(write_end, 2)
    os.close(write_end)

    def pump() -> None:
        held = b""
        while chunk := os.read(read_end, 65536):
            held += chunk
            lines = held.split(b"\n")
            held = lines.pop()
            out = b"".join(line + b"\n" for line in lines if not NATIVE_LINE.match(line))
            if held and not held.startswith(b"[2"):
                out, held = out + held, b""
            if out:
                os.write(saved, out)
        if held and not NATIVE_LINE.match(held):
            os.write(saved, held)

    thread = threading.Thread(target=pump, daemon=True)
    thread.start()
    try:
        yield
    finally:
        os.dup2(saved, 2)  # closes the pipe's write end: the pump sees its end
        thread.join(timeout=5)
        os.close(read_end)
        os.close(saved)


def _encoded(batch: dict[str, np.ndarray], bits: int) -> Encoded:
    ok = np.asarray(batch["ok"], bool)
    texts = [str(t) for t in batch["meta"]]
    failures = [Failure(**json.loads(t)) for t, good in zip(texts, ok) if not good]
    codes = np.asarray(batch["codes"], np.uint8).reshape(len(ok), bits // 8)[ok]
    vectors = np.asarray(batch["vectors"], np.int8).reshape(len(ok), bits)[ok]
    return Encoded(codes, vectors, [json.loads(t) for t, good in zip(texts, ok) if good],
                   np.asarray(batch["replanned"], bool)[ok], failures)


def start_ray(settings: RaySettings) -> tuple[Any, bool]:
    """Ray, joined to `settings.address` or started on this machine unless it is running
    already; whether this call started it (and so stops it)."""
    try:
        import ray
    except ImportError:
        raise InputError("--engine ray needs Ray", hint="pip install 'dnhcli[ray]' (ray[data])") from None
    if ray.is_initialized():
        return ray, False
    for name in ("ray", "ray.data"):
        logging.getLogger(name).setLevel(logging.ERROR)
    options: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                               "logging_level": logging.ERROR}
    if settings.address:
        _check_reachable(settings.address)
        options["address"] = settings.address
    else:  # "local": a new Ray here, never one a `ray start` left behind
        options.update(address="local", num_cpus=settings.workers * settings.threads)
    with tempfile.TemporaryFile() as captured:
        saved = os.dup(2)  # Ray's C++ core prints start-up lines straight to the process's stderr
        os.dup2(captured.fileno(), 2)
        try:
            ray.init(**options)
        except Exception as exc:  # noqa: BLE001 - Ray raises many kinds for a cluster it cannot join
            os.dup2(saved, 2)
            where = settings.address or "this machine"
            raise DataError(f"cannot start Ray on {where}: {str(exc).splitlines()[0][:200]}",
                            hint="for --address, is the cluster running (ray start --head)?") from None
        finally:
            os.dup2(saved, 2)
            os.close(saved)
    return ray, True
