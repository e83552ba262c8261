"""Inference backends: images -> continuous codes behind one interface.

`dnh hash`, `dnh search` and `dnh evaluate` take any `Backend`: PyTorch for a training
checkpoint, OpenVINO CPU for an exported `encoder.xml`, ONNX Runtime for an exported
`encoder.onnx`. A backend knows its bit length and the fingerprint of the weights, so a
database can refuse codes from another model.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from dnhcli.errors import ModelError


class Backend(Protocol):
    """What the commands need from a model."""

    name: str
    bits: int
    fingerprint: str
    info: dict[str, Any]
    input_side: int  # the model reads grey (input_side x input_side) images

    def encode(self, images: np.ndarray) -> np.ndarray:
        """uint8 images (N, side, side) -> continuous codes h (N, K) float32."""
        ...


SCALE = np.float32(1.0 / 255.0)  # uint8 pixels -> [0, 1], multiplied as in `encode.to_input`
BATCH = 1024


def _in_batches(images: np.ndarray, bits: int, run: Any) -> np.ndarray:
    """Codes of uint8 images (N, S, S) from `run` (float32 (n, 1, S, S) -> (n, K)), in batches."""
    out = [run(np.asarray(images[i:i + BATCH], np.float32)[:, None] * SCALE)
           for i in range(0, len(images), BATCH)]
    return np.concatenate(out) if out else np.zeros((0, bits), np.float32)


def _export_facts(path: Path, facts: Mapping[str, str], side: int) -> dict[str, Any]:
    """A `_Loaded`'s fields from the facts `dnh export` stores in the IR and the ONNX file."""
    info = {"arch": facts["arch"], "bits": int(facts["bits"]),
            "dataset_fingerprint": facts["dataset_fingerprint"], "model": str(Path(path).absolute()),
            "input_size": [1, side, side]}
    return {"path": Path(path), "bits": int(facts["bits"]), "fingerprint": facts["model_fingerprint"],
            "info": info, "input_side": side}


def _square_side(shape: list[str], path: Path) -> int:
    """The side S of an exported model's input (N, 1, S, S)."""
    if len(shape) != 4 or shape[1] != "1" or shape[2] != shape[3] or not shape[2].isdigit():
        raise ModelError(f"{path} takes input of shape ({', '.join(shape)}), not (N, 1, S, S)",
                         hint="pass an encoder exported by `dnh export`")
    return int(shape[2])


@dataclass
class _Loaded:
    """What every backend holds: its file, the model's facts, and the runnable model."""

    path: Path
    bits: int = 0
    fingerprint: str = ""
    info: dict[str, Any] = field(default_factory=dict)
    runner: Any = None
    input_side: int = 28


@dataclass
class TorchBackend(_Loaded):
    """A `dnh train` checkpoint run with PyTorch on the CPU."""

    name: str = "pytorch"

    @classmethod
    def load(cls, path: Path) -> TorchBackend:
        from dnhcli.models.checkpoint import load_checkpoint, model_fingerprint, model_from_checkpoint
        from dnhcli.models.encode import channels_last
        from dnhcli.models.registry import model_defaults

        payload = load_checkpoint(path)
        model = model_from_checkpoint(payload)
        info = {key: payload[key] for key in ("arch", "bits", "class_names", "classes_mode",
                                              "organ_names", "disease_names", "epoch")}
        info["dataset_fingerprint"] = payload["dataset"].get("fingerprint")
        info["objective"] = payload.get("hparams", {}).get("objective", "dnh")  # older checkpoints: dnh
        info["checkpoint"] = str(Path(path).absolute())
        side = int(model_defaults(str(payload["arch"])).input_size[-1])
        info["input_size"] = [1, side, side]
        return cls(path=Path(path), bits=int(payload["bits"]),
                   fingerprint=model_fingerprint(payload["model"]), info=info,
                   runner=channels_last(model.encoder).eval(), input_side=side)

    def encode(self, images: np.ndarray) -> np.ndarray:
        from dnhcli.models.encode import encode_images

        return encode_images(self.runner, images)


@dataclass
class OpenVINOBackend(_Loaded):
    """An encoder exported by `dnh export` (OpenVINO IR), compiled once for the CPU in f32.

    Batches run on the IR's dynamic batch axis; single images (a search query) on a second
    model compiled for batch 1 whose one request's input is written in place (0.065-0.085 ms
    per image here, against 0.14 ms through the dynamic model)."""

    name: str = "openvino"
    single: Any = None  # (compiled batch-1 model, its infer request), made on first use
    config: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path, threads: int | None = None) -> OpenVINOBackend:
        import openvino as ov

        # ask the IR frontend first: read_model would try every frontend on a file that is not an
        # IR, and TensorFlow's writes its parse errors straight to the process's stderr
        if not ov.frontend.FrontEndManager().load_by_framework("ir").supported(str(path)):
            raise ModelError(f"{path} is not an OpenVINO IR model",
                             hint="pass the encoder.xml written by `dnh export`")
        core = ov.Core()
        try:
            model = core.read_model(str(path))
        except RuntimeError as exc:
            reason = [line for line in str(exc).splitlines() if line.strip()][-1:] or ["unknown error"]
            raise ModelError(f"cannot read the OpenVINO model {path}: {reason[0].strip()}",
                             hint="pass the encoder.xml written by `dnh export`, with its .bin "
                                  "beside it") from None
        try:
            facts = {key: model.get_rt_info(["dnh", key]).astype(str) for key in
                     ("format", "bits", "model_fingerprint", "arch", "dataset_fingerprint")}
        except RuntimeError:
            raise ModelError(f"{path} is not a dnh export (no dnh facts in its rt_info)",
                             hint="export a checkpoint with `dnh export`") from None
        side = _square_side([str(d) for d in list(model.input(0).get_partial_shape())], path)
        config: dict[str, Any] = {"INFERENCE_PRECISION_HINT": "f32"}
        if threads is not None:
            config["INFERENCE_NUM_THREADS"] = threads
        compiled = core.compile_model(model, "CPU", config)
        return cls(**_export_facts(path, facts, side), runner=compiled, config=config)

    @classmethod
    def from_onnx(cls, path: Path, threads: int | None = None) -> OpenVINOBackend:
        """An encoder.onnx from `dnh export` (or stored in a database) compiled by OpenVINO, for
        machines without ONNX Runtime; its facts come from the ONNX metadata."""
        import onnx
        import openvino as ov

        try:
            facts = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
            model = ov.Core().read_model(str(path))
        except Exception as exc:  # noqa: BLE001 - onnx and OpenVINO raise many kinds on a bad file
            raise ModelError(f"cannot read the ONNX model {path}: {str(exc).splitlines()[0][:200]}",
                             hint="pass the encoder.onnx written by `dnh export`") from None
        if facts.get("format") != "dnh-export":
            raise ModelError(f"{path} is not a dnh export (no dnh facts in its metadata)",
                             hint="export a checkpoint with `dnh export`")
        side = _square_side([str(d) for d in list(model.input(0).get_partial_shape())], path)
        config: dict[str, Any] = {"INFERENCE_PRECISION_HINT": "f32"}
        if threads is not None:
            config["INFERENCE_NUM_THREADS"] = threads
        compiled = ov.Core().compile_model(model, "CPU", config)
        return cls(**_export_facts(path, facts, side), runner=compiled, config=config)

    def encode(self, images: np.ndarray) -> np.ndarray:
        if len(images) == 1:
            return self._encode_one(np.asarray(images).reshape(1, 1, self.input_side, self.input_side))
        return _in_batches(images, self.bits, lambda x: self.runner(x)[0])

    def _encode_one(self, image: np.ndarray) -> np.ndarray:
        if self.single is None:
            import openvino as ov

            core = ov.Core()
            model = core.read_model(str(self.path))
            model.reshape([1, 1, self.input_side, self.input_side])
            compiled = core.compile_model(model, "CPU", {**self.config, "PERFORMANCE_HINT": "LATENCY"})
            request = compiled.create_infer_request()
            self.single = (compiled, request, request.get_input_tensor(0).data)
        _, request, buffer = self.single
        np.multiply(image, SCALE, out=buffer, casting="unsafe")  # into the request's own input
        request.infer()
        return np.array(request.get_output_tensor(0).data)


@dataclass
class OnnxRuntimeBackend(_Loaded):
    """An encoder.onnx written by `dnh export`, run by ONNX Runtime on the CPU: on CPUs without
    AVX-512 or AMX the fastest engine for this network (docs/BENCHMARKS.md)."""

    name: str = "onnxruntime"

    @classmethod
    def load(cls, path: Path, threads: int | None = None) -> OnnxRuntimeBackend | OpenVINOBackend:
        try:
            import onnxruntime as ort
            from onnxruntime.capi import onnxruntime_pybind11_state as ort_errors
        except ImportError:  # OpenVINO reads ONNX too
            return OpenVINOBackend.from_onnx(path, threads)
        options = ort.SessionOptions()
        options.inter_op_num_threads = 1
        if threads is not None:
            options.intra_op_num_threads = threads
        failures = tuple(getattr(ort_errors, name) for name in (
            "Fail", "InvalidArgument", "NoSuchFile", "NoModel", "InvalidProtobuf", "InvalidGraph",
            "NotImplemented", "RuntimeException") if hasattr(ort_errors, name))
        try:
            session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except failures as exc:
            raise ModelError(f"cannot read the ONNX model {path}: {str(exc).splitlines()[0][:200]}",
                             hint="pass the encoder.onnx written by `dnh export`") from None
        facts = session.get_modelmeta().custom_metadata_map
        if facts.get("format") != "dnh-export":
            raise ModelError(f"{path} is not a dnh export (no dnh facts in its metadata)",
                             hint="export a checkpoint with `dnh export`")
        inputs = session.get_inputs()
        if len(inputs) != 1 or inputs[0].name != "image":
            raise ModelError(f"{path} does not take one input `image`")
        side = _square_side([str(d) for d in inputs[0].shape], path)
        return cls(**_export_facts(path, facts, side), runner=session)

    def encode(self, images: np.ndarray) -> np.ndarray:
        return _in_batches(images, self.bits, lambda x: self.runner.run(None, {"image": x})[0])


def load_backend(path: Path | str, threads: int | None = None) -> Backend:
    """The backend for a model file: a `.pt` checkpoint runs on PyTorch, an `encoder.xml` from
    `dnh export` on OpenVINO CPU, an `encoder.onnx` on ONNX Runtime (OpenVINO where ONNX Runtime
    is not installed; these two with `threads`
    inference threads; PyTorch's are global)."""
    path = Path(path)
    if not path.exists():
        raise ModelError(f"model not found: {path}", hint="pass a checkpoint from `dnh train` (best.pt)")
    if path.suffix == ".pt":
        return TorchBackend.load(path)
    if path.suffix == ".xml":
        return OpenVINOBackend.load(path, threads)
    if path.suffix == ".onnx":
        return OnnxRuntimeBackend.load(path, threads)
    raise ModelError(f"unsupported model file {path}", hint="pass a .pt checkpoint from `dnh train`, "
                     "or the encoder.xml or encoder.onnx from `dnh export`")
