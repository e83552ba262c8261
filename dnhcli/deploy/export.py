"""`export`: a training checkpoint's encoder -> ONNX and OpenVINO IR, verified bit for bit.

The exported graph maps `image` (N, 1, 28, 28) float32 in [0, 1] (uint8 pixels / 255) to
`code` (N, K), the continuous code whose signs are the bits. Both files carry the checkpoint's
facts (ONNX `metadata_props`, OpenVINO `rt_info` under "dnh"), and `manifest.json` lies beside
them. Export then hashes a verification set with PyTorch, ONNX Runtime (when installed) and
OpenVINO CPU and reports how many bits agree.
"""

from __future__ import annotations

import json
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dnhcli.data.dataset import PreparedDataset
from dnhcli.deploy.backends import TorchBackend
from dnhcli.errors import InputError, ModelError
from dnhcli.folders import check_output_folder, staged_folder
from dnhcli.index.codes import sign_bits
from dnhcli.manifest import package_versions, write_json

FORMAT = "dnh-export"
FORMAT_VERSION = 1
OPSET = 18
FRAGILE = 0.01
PREPROCESSING = "grey 28x28 uint8 pixels / 255 -> float32 (N, 1, 28, 28) in [0, 1]"


@dataclass(frozen=True)
class ExportConfig:
    model: Path
    out: Path
    data: Path | None = None  # verification images: this dataset's val split (else synthetic)
    verify_count: int = 2000
    force: bool = False
    int8: bool = False  # also write encoder-int8.xml (NNCF post-training quantization)


@dataclass
class ExportResult:
    out: Path
    onnx: Path
    openvino_xml: Path
    bits: int
    bit_agreement: float
    agreement: dict[str, dict[str, float | int]] = field(default_factory=dict)
    fragile_components: int = 0
    verify_images: int = 0
    seconds: float = 0.0
    int8_xml: Path | None = None

    def to_json(self) -> dict[str, Any]:
        int8 = self.agreement.get("openvino_cpu_int8")
        return {"out": str(self.out), "onnx": str(self.onnx), "openvino_xml": str(self.openvino_xml),
                "int8_xml": None if self.int8_xml is None else str(self.int8_xml),
                "int8_bit_agreement": None if int8 is None else int8["bits"],
                "bits": self.bits, "bit_agreement": self.bit_agreement, "agreement": self.agreement,
                "fragile_components": self.fragile_components, "verify_images": self.verify_images,
                "seconds": round(self.seconds, 3)}


def sample_images(data: Path | None, count: int) -> np.ndarray:
    """Up to `count` uint8 images (N, 28, 28): a prepared dataset's val split, or, without one,
    synthetic images from every embedded subset (some hundreds)."""
    if data is not None:
        images = np.asarray(PreparedDataset.open(data).split("val").images)
    else:
        from dnhcli.data.synthetic import generate_subset, synthetic_infos

        parts = [generate_subset(info, 100, seed=1)["train_images"] for info in synthetic_infos()]
        images = np.concatenate(parts)
    return images[:count]


def _facts(backend: TorchBackend) -> dict[str, str]:
    info = backend.info
    return {"format": FORMAT, "format_version": str(FORMAT_VERSION), "bits": str(backend.bits),
            "model_fingerprint": backend.fingerprint, "arch": str(info["arch"]),
            "objective": str(info.get("objective", "dnh")),
            "class_names": json.dumps(info["class_names"]), "organ_names": json.dumps(info["organ_names"]),
            "dataset_fingerprint": str(info.get("dataset_fingerprint")), "preprocessing": PREPROCESSING,
            "input": "image", "output": "code", "precision": "f32",
            "versions": json.dumps(package_versions())}


def bit_agreement(reference: np.ndarray, other: np.ndarray) -> dict[str, float | int]:
    """How far the sign bits of continuous codes `other` agree with those of `reference`."""
    a, b = sign_bits(reference), sign_bits(other)
    return {"bits": round(float((a == b).mean()), 6), "flipped_bits": int((a != b).sum()),
            "codes_differing": int((a != b).any(axis=1).sum()),
            "max_abs_diff": float(np.abs(reference - other).max(initial=0.0))}


def write_onnx(backend: TorchBackend, path: Path, x: torch.Tensor | None = None) -> None:
    """The checkpoint's encoder as ONNX (dynamic batch) carrying dnh's facts in its metadata."""
    import onnx

    side = backend.input_side
    x = torch.zeros(2, 1, side, side) if x is None else x
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the TorchScript exporter: no onnxscript
        torch.onnx.export(backend.runner.eval(), (x.contiguous(),), str(path), input_names=["image"],
                          output_names=["code"], dynamic_axes={"image": {0: "N"}, "code": {0: "N"}},
                          opset_version=OPSET, dynamo=False)
    model = onnx.load(str(path))
    for key, value in _facts(backend).items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def export_model(config: ExportConfig) -> ExportResult:
    """Export, verify and write the folder atomically (nothing is left on failure)."""
    import openvino as ov

    started = time.perf_counter()
    check_output_folder(config.out, config.force, FORMAT, "export")
    if config.verify_count < 1:
        raise InputError(f"--verify-count must be at least 1, got {config.verify_count}")
    if Path(config.model).suffix != ".pt":
        raise ModelError(f"export needs a `dnh train` checkpoint (.pt), got {config.model}")
    if config.int8:
        from dnhcli.deploy.quantize import nncf_available

        if not nncf_available():
            raise ModelError("--int8 needs NNCF, which is not installed",
                             hint="pip install nncf (or pip install -e '.[int8]')")
    backend = TorchBackend.load(Path(config.model))
    images = sample_images(config.data, config.verify_count)
    x = torch.from_numpy(np.array(images, dtype=np.float32) / 255.0).unsqueeze(1)
    facts = _facts(backend)
    with staged_folder(config.out) as tmp:
        onnx_path, xml_path = tmp / "encoder.onnx", tmp / "encoder.xml"
        write_onnx(backend, onnx_path, x[:2])
        ov_model = ov.convert_model(str(onnx_path))
        for key, value in facts.items():
            ov_model.set_rt_info(value, ["dnh", key])
        ov.save_model(ov_model, str(xml_path), compress_to_fp16=False)
        reference = backend.encode(images)
        compiled = ov.Core().compile_model(str(xml_path), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
        agreement = {"openvino_cpu_f32": bit_agreement(reference, compiled(x.numpy())[0])}
        try:
            import onnxruntime

            session = onnxruntime.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
            agreement["onnxruntime"] = bit_agreement(reference, session.run(None, {"image": x.numpy()})[0])
        except ImportError:
            pass
        files = ["encoder.onnx", "encoder.xml", "encoder.bin"]
        if config.int8:
            files += ["encoder-int8.xml", "encoder-int8.bin"]
            int8 = _write_int8(ov_model, tmp / "encoder-int8.xml", config, x.numpy(), reference)
            agreement["openvino_cpu_int8"] = int8
        fragile = int((np.abs(reference) < FRAGILE).sum())
        write_json(tmp / "manifest.json", {
            **{k: v for k, v in facts.items() if k not in ("class_names", "organ_names", "versions")},
            "bits": backend.bits, "class_names": backend.info["class_names"],
            "organ_names": backend.info["organ_names"], "versions": package_versions(),
            "source": str(Path(config.model).absolute()),
            "files": files,
            "opset": OPSET, "verification": {"images": len(images), "agreement": agreement,
                                             "fragile_components": fragile, "fragile_below": FRAGILE}})
    out = config.out.absolute()
    f32 = [a["bits"] for name, a in agreement.items() if name != "openvino_cpu_int8"]
    return ExportResult(out=out, onnx=out / "encoder.onnx", openvino_xml=out / "encoder.xml",
                        bits=backend.bits, bit_agreement=min(f32), agreement=agreement,
                        fragile_components=fragile, verify_images=len(images),
                        seconds=time.perf_counter() - started,
                        int8_xml=out / "encoder-int8.xml" if config.int8 else None)


def _write_int8(ov_model: Any, path: Path, config: ExportConfig, x: np.ndarray,
                reference: np.ndarray) -> dict[str, float | int]:
    """Quantize the IR to INT8 (calibrated on the train split, or synthetic images), save it
    beside the f32 one, and return its agreement with PyTorch on the verification images."""
    import openvino as ov

    from dnhcli.deploy.quantize import CALIBRATION_IMAGES, quantize_int8

    if config.data is not None:
        calibration = np.asarray(PreparedDataset.open(config.data).split("train").images[:CALIBRATION_IMAGES])
    else:
        calibration = sample_images(None, CALIBRATION_IMAGES)
    quantized = quantize_int8(ov_model, calibration)
    quantized.set_rt_info("int8", ["dnh", "precision"])
    ov.save_model(quantized, str(path), compress_to_fp16=False)
    compiled = ov.Core().compile_model(str(path), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    return bit_agreement(reference, compiled(x)[0])
