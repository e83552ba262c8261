"""Training checkpoints: what they hold, saving them atomically, loading them safely."""

from __future__ import annotations

import hashlib
import os
import pickle
import textwrap
import warnings
from pathlib import Path
from typing import Any

import torch

from dnhcli.errors import ModelError
from dnhcli.models.networks import DNHNetwork
from dnhcli.models.registry import create_model

FORMAT = "dnh-checkpoint"
FORMAT_VERSION = 1
REQUIRED = ("arch", "bits", "class_names", "classes_mode", "organ_names", "disease_names",
            "hparams", "epoch", "model", "dataset")


def save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    """Write a checkpoint via a temporary file, fsync and rename: never a torn file."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as handle:
            torch.save({"format": FORMAT, "format_version": FORMAT_VERSION, **payload}, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def load_checkpoint(path: Path | str) -> dict[str, Any]:
    """Load a dnh checkpoint with `weights_only=True` (never runs code from the file)."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"checkpoint not found: {path}", hint="train one with `dnh train`")
    try:
        with warnings.catch_warnings():  # torch warns about foreign pickles; we refuse them below
            warnings.simplefilter("ignore")
            payload = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError,
            AttributeError, ImportError, IndexError, KeyError, TypeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if not isinstance(exc, (RuntimeError, OSError)):
            # the unpickler's own words: cryptic on garbage, and torch advises weights_only=False
            first = "not a weights-only torch file; dnh never runs code from a checkpoint"
        raise ModelError(f"{path} is not a readable dnh checkpoint ({first})",
                         hint="it may be damaged, or not made by `dnh train`") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ModelError(f"{path} is not a dnh checkpoint", hint="train one with `dnh train`")
    if payload.get("format_version") != FORMAT_VERSION:
        raise ModelError(f"{path} has checkpoint format {payload.get('format_version')}, "
                         f"this dnh reads {FORMAT_VERSION}")
    missing = [key for key in REQUIRED if key not in payload]
    if missing:
        raise ModelError(f"checkpoint {path} lacks {', '.join(missing)}")
    return payload


def model_fingerprint(state: dict[str, torch.Tensor], prefix: str = "encoder.") -> str:
    """sha256 of the encoder's weights (names, shapes, dtypes and values): the identity of
    the function image -> code, shared by checkpoints, exported models and databases."""
    digest = hashlib.sha256()
    for name in sorted(k for k in state if k.startswith(prefix)):
        tensor = state[name].detach().cpu().contiguous()
        digest.update(f"{name}:{tuple(tensor.shape)}:{tensor.dtype};".encode())
        digest.update(tensor.numpy().tobytes())
    return digest.hexdigest()


def model_from_checkpoint(payload: dict[str, Any]) -> DNHNetwork:
    """Rebuild the network a checkpoint describes and load its weights (strictly)."""
    model = create_model(payload["arch"], bits=payload["bits"], classes=len(payload["class_names"]))
    try:
        model.load_state_dict(payload["model"])
    except (RuntimeError, KeyError, TypeError) as exc:
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        detail = lines[1] if len(lines) > 1 else lines[0] if lines else type(exc).__name__
        raise ModelError(f"checkpoint weights do not fit {payload['arch']} with {payload['bits']} bits: "
                         f"{textwrap.shorten(detail, 240, placeholder=' ...')}") from None
    return model.eval()
