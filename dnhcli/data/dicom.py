"""DICOM files -> display values in [0, 1], frame by frame, with their identifiers (pydicom).

Grey images (MONOCHROME1/2) go through, in this order:

1. the Modality LUT (Rescale Slope/Intercept or a Modality LUT Sequence, `apply_modality_lut`);
2. the VOI LUT: a VOI LUT Sequence (`apply_voi_lut`, scaled by its entries' bit depth), or
   else the first Window Center/Width pair with its VOI LUT Function (LINEAR, LINEAR_EXACT or
   SIGMOID, PS3.3 C.11.2.1.2), mapped onto [0, 1] as a viewer shows it; a file without either
   maps its stored range (Bits Stored, signed or not, through the Modality LUT) onto [0, 1];
3. MONOCHROME1 is inverted (1 - value), so that bright means dense in every file.

Colour images (RGB, and YBR converted to RGB by pydicom) are scaled by their bit depth.
No further stretching: a DICOM and a PNG of the same displayed picture hash alike. Every
frame of a multi-frame file is hashed (metadata `frame`, `frames`). The identifiers kept are
SOPInstanceUID, StudyInstanceUID, SeriesInstanceUID, Modality and BodyPartExamined; the
patient's name, birth date and every other patient attribute are never read into metadata.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from dnhcli.data.preprocess import check_size, to_unit
from dnhcli.errors import InputError

KEPT = {"SOPInstanceUID": "sop_instance_uid", "StudyInstanceUID": "study_instance_uid",
        "SeriesInstanceUID": "series_instance_uid", "Modality": "modality",
        "BodyPartExamined": "body_part"}
DECODERS_HINT = ("install a decoder pydicom can use, e.g. pip install pylibjpeg pylibjpeg-libjpeg "
                 "pylibjpeg-openjpeg (JPEG, JPEG-LS, JPEG 2000) or python-gdcm")


def is_dicom(path: Path) -> bool:
    """A `.dcm` file, or any file with the DICOM preamble ("DICM" at byte 128)."""
    if path.suffix.lower() in (".dcm", ".dicom"):
        return True
    try:
        with open(path, "rb") as handle:
            head = handle.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:] == b"DICM"


def read_dicom(path: Path | BinaryIO, source: str | None = None
               ) -> tuple[list[np.ndarray], list[dict[str, Any]]]:
    """Every frame of a DICOM file (a path, or an open binary file such as an upload held in
    memory, named `source` in messages) as display values in [0, 1] ((H, W) grey or (H, W, 3)
    colour, float32), and one metadata dict per frame."""
    source = source or str(path)
    with warnings.catch_warnings():  # pydicom warns of what it forgives; dnh reports what it refuses
        warnings.simplefilter("ignore")
        return _read(path, source)


def _read(path: Path | BinaryIO, source: str) -> tuple[list[np.ndarray], list[dict[str, Any]]]:
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        ds = pydicom.dcmread(path, force=True)
    except (InvalidDicomError, OSError, EOFError, ValueError, TypeError, KeyError,
            AttributeError, IndexError, OverflowError) as exc:
        raise InputError(f"{source}: not a readable DICOM file ({type(exc).__name__}: {exc})") from None
    if "PixelData" not in ds:
        raise InputError(f"{source}: DICOM file holds no pixel data",
                         hint="only image objects (with Pixel Data) can be hashed")
    try:
        rows, columns = int(ds.Rows), int(ds.Columns)
        frames = int(ds.get("NumberOfFrames", 1) or 1)
        samples = int(ds.get("SamplesPerPixel", 1) or 1)
        photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).upper()
    except (AttributeError, TypeError, ValueError) as exc:
        raise InputError(f"{source}: DICOM image attributes are missing or invalid ({exc})") from None
    check_size(rows, columns, source, frames)
    pixels = _decode(ds, source)
    stack = pixels[None] if frames == 1 else pixels
    if stack.shape[0] != frames or stack.shape[1:3] != (rows, columns):
        raise InputError(f"{source}: pixel data of shape {pixels.shape} does not match the "
                         f"declared {frames} frame(s) of {rows}x{columns}")
    if samples == 1:
        images = [_grey(frame, ds, photometric, source) for frame in stack]
    else:
        images = [to_unit(frame, source) for frame in stack]
    meta = {key: str(ds.get(tag)) for tag, key in KEPT.items() if ds.get(tag) not in (None, "")}
    out = []
    for index in range(frames):
        out.append({**meta, **({"frame": index, "frames": frames} if frames > 1 else {})})
    return images, out


def _decode(ds: Any, source: str) -> np.ndarray:
    syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    if syntax is not None and not syntax.is_transfer_syntax:
        raise InputError(f"{source}: unknown transfer syntax {syntax}",
                         hint="dnh reads the transfer syntaxes of the DICOM standard")
    try:
        return np.asarray(ds.pixel_array)
    except (NotImplementedError, RuntimeError) as exc:
        if syntax is not None and syntax.is_compressed:
            raise InputError(f"{source}: pixel data is compressed as {syntax.name} ({syntax}), which "
                             "no installed decoder reads", hint=DECODERS_HINT) from None
        reason = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
        raise InputError(f"{source}: cannot decode the pixel data ({reason})") from None
    except (ValueError, AttributeError, TypeError, KeyError, IndexError, EOFError, OSError) as exc:
        reason = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
        raise InputError(f"{source}: damaged or truncated pixel data ({reason})") from None


def _grey(frame: np.ndarray, ds: Any, photometric: str, source: str) -> np.ndarray:
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    values = np.asarray(apply_modality_lut(frame, ds), np.float64)
    if "VOILUTSequence" in ds and len(ds.VOILUTSequence):
        descriptor = ds.VOILUTSequence[0].LUTDescriptor
        top = float(2 ** int(descriptor[2]) - 1)
        unit = np.asarray(apply_voi_lut(values, ds, prefer_lut=True), np.float64) / top
    elif "WindowCenter" in ds and "WindowWidth" in ds:
        function = str(ds.get("VOILUTFunction", "LINEAR") or "LINEAR").upper()
        unit = window(values, _first(ds.WindowCenter), _first(ds.WindowWidth), function, source)
    else:
        bits = int(ds.get("BitsStored", 8) or 8)
        signed = int(ds.get("PixelRepresentation", 0) or 0) == 1
        stored = np.array([-(2 ** (bits - 1)), 2 ** (bits - 1) - 1] if signed else [0, 2 ** bits - 1])
        low, high = np.sort(np.asarray(apply_modality_lut(stored, ds), np.float64))
        unit = (values - low) / max(high - low, 1e-12)
    unit = np.clip(unit, 0.0, 1.0)
    if photometric == "MONOCHROME1":
        unit = 1.0 - unit
    return unit.astype(np.float32)


def _first(value: Any) -> float:
    """The first of a multi-valued attribute (several windows: the first is the default)."""
    try:
        values = [value] if isinstance(value, (str, bytes)) else list(value)
    except TypeError:
        values = [value]
    try:
        return float(values[0])
    except (TypeError, ValueError, IndexError):
        return float("nan")


def window(values: np.ndarray, centre: float, width: float, function: str = "LINEAR",
           source: str = "") -> np.ndarray:
    """The VOI window of PS3.3 C.11.2.1.2 onto [0, 1]."""
    if not (np.isfinite(centre) and np.isfinite(width)) or width <= 0 or (
            function == "LINEAR" and width < 1):
        raise InputError(f"{source}: invalid VOI window (centre {centre}, width {width})")
    x = np.asarray(values, np.float64)
    if function == "SIGMOID":
        return 1.0 / (1.0 + np.exp(np.clip(-4.0 * (x - centre) / width, -700, 700)))
    if function == "LINEAR_EXACT":
        return np.clip((x - centre) / width + 0.5, 0.0, 1.0)
    return np.clip((x - (centre - 0.5)) / (width - 1.0) + 0.5, 0.0, 1.0) if width > 1 else (
        (x > centre - 0.5).astype(np.float64))
