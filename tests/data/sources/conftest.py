"""Small trees of a user's own images, written by the tests: PNG and TIFF by Pillow, DICOM (with
PatientID and PatientName) by pydicom."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest


def picture(seed: int, side: int = 32) -> np.ndarray:
    """A grey picture whose brightness follows `seed`, so that classes can differ."""
    rng = np.random.default_rng(seed)
    return np.clip(rng.normal(40 + (seed % 5) * 40, 20, (side, side)), 0, 255).astype(np.uint8)


def write_picture(path: Path, seed: int) -> Path:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(picture(seed)).save(path)
    return path


def write_dicom(path: Path, seed: int, patient: str, frames: int = 1, **tags: str) -> Path:
    """An uncompressed MONOCHROME2 DICOM file with a PatientID, a PatientName and `tags`."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

    path.parent.mkdir(parents=True, exist_ok=True)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid(entropy_srcs=[str(path), str(seed)])
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = SecondaryCaptureImageStorage, meta.MediaStorageSOPInstanceUID
    ds.PatientID, ds.PatientName = patient, f"Doe^{patient}"
    for keyword, value in tags.items():
        setattr(ds, keyword, value)
    ds.Rows = ds.Columns = 32
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit, ds.PixelRepresentation = 7, 0
    pixels = np.stack([picture(seed + f) for f in range(frames)])
    if frames > 1:
        ds.NumberOfFrames = frames
    ds.PixelData = pixels.tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path


@pytest.fixture
def class_tree(tmp_path: Path) -> Callable[..., Path]:
    """DIR/<class>/<n>.png (and .tif): `per_class` images of each class."""

    def make(classes: tuple[str, ...] = ("benign", "malignant"), per_class: int = 8,
             group: str | None = None) -> Path:
        root = tmp_path / "images"
        for c, name in enumerate(classes):
            folder = root / group / name if group else root / name
            for i in range(per_class):
                write_picture(folder / f"{i}.{'tif' if i % 3 == 0 else 'png'}", c + 5 * i)
        return root

    return make


@pytest.fixture
def dicom_tree(tmp_path: Path) -> Path:
    """12 patients, 3 DICOM files each; Modality CT or MR by patient, BodyPartExamined by file;
    the first patient's files also have a 3-frame file."""
    root = tmp_path / "dicoms"
    for p in range(12):
        for f in range(3):
            write_dicom(root / f"p{p:02d}" / f"{f}.dcm", 10 * p + f, f"PID{p:02d}",
                        Modality="CT" if p % 2 else "MR", BodyPartExamined="CHEST" if f else "HEAD")
    write_dicom(root / "p00" / "multi.dcm", 999, "PID00", frames=3, Modality="MR", BodyPartExamined="HEAD")
    return root
