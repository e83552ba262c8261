"""Inference backends: images -> continuous codes behind one interface.

`dnh hash`, `dnh search` and `dnh evaluate` take any `Backend`; the PyTorch one reads a
training checkpoint. A backend knows its bit length and the fingerprint of the weights,
so a database can refuse codes from another model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from dnhcli.core.errors import ModelError


class Backend(Protocol):
    """What the commands need from a model."""

    name: str
    bits: int
    fingerprint: str
    info: dict[str, Any]

    def encode(self, images: np.ndarray) -> np.ndarray:
        """uint8 images (N, 28, 28) -> continuous codes h (N, K) float32."""
        ...


@dataclass
class TorchBackend:
    """A `dnh train` checkpoint run with PyTorch on the CPU."""

    path: Path
    name: str = "pytorch"
    bits: int = 0
    fingerprint: str = ""
    info: dict[str, Any] = field(default_factory=dict)
    _encoder: Any = None

    @classmethod
    def load(cls, path: Path) -> TorchBackend:
        from dnhcli.core.checkpoint import load_checkpoint, model_fingerprint, model_from_checkpoint
        from dnhcli.core.encode import channels_last

        payload = load_checkpoint(path)
        model = model_from_checkpoint(payload)
        info = {key: payload[key] for key in ("arch", "bits", "class_names", "classes_mode",
                                              "organ_names", "disease_names", "epoch")}
        info["dataset_fingerprint"] = payload["dataset"].get("fingerprint")
        info["checkpoint"] = str(Path(path).absolute())
        return cls(path=Path(path), bits=int(payload["bits"]),
                   fingerprint=model_fingerprint(payload["model"]), info=info,
                   _encoder=channels_last(model.encoder).eval())

    def encode(self, images: np.ndarray) -> np.ndarray:
        from dnhcli.core.encode import encode_images

        return encode_images(self._encoder, images)


def load_backend(path: Path | str) -> Backend:
    """The backend for a model file: a `.pt` checkpoint runs on PyTorch."""
    path = Path(path)
    if not path.exists():
        raise ModelError(f"model not found: {path}", hint="pass a checkpoint from `dnh train` (best.pt)")
    if path.suffix == ".pt":
        return TorchBackend.load(path)
    raise ModelError(f"unsupported model file {path}", hint="pass a .pt checkpoint from `dnh train`")
