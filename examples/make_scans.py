"""Write a folder of full-size scans in mixed formats from a prepared dataset's query split, to
try `dnh hash`, `dnh search` and `dnh db` on files like a clinic's (no download needed).

    python examples/make_scans.py --data runs/demo/data --out runs/demo/scans [--count 12]

Each image is enlarged 8x (224 px, bicubic) and saved in turn as an 8-bit PNG, a JPEG, a 16-bit
TIFF, a 16-bit DICOM with a window (MONOCHROME2, rescaled like CT) and an 8-bit MONOCHROME1
DICOM (inverted, as some X-ray systems store them); the DICOM files carry a made-up patient
name, which dnh never stores.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image


def _dicom(path: Path, pixels: np.ndarray, monochrome1: bool) -> None:
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.PatientName, ds.Modality, ds.BodyPartExamined = "Example^Patient", "OT", "CHEST"
    ds.Rows, ds.Columns, ds.SamplesPerPixel = *pixels.shape, 1
    if monochrome1:  # 8-bit, stored inverted
        ds.PhotometricInterpretation, data = "MONOCHROME1", (255 - pixels).astype(np.uint8)
    else:  # 12 bits stored, rescaled to -1024.., windowed back onto the picture
        ds.PhotometricInterpretation, data = "MONOCHROME2", pixels.astype(np.uint16) * 16
        ds.RescaleSlope, ds.RescaleIntercept = 1, -1024
        ds.WindowCenter, ds.WindowWidth = 2040 - 1024 + 0.5, 4081
    ds.BitsAllocated = data.dtype.itemsize * 8
    ds.BitsStored = 12 if data.dtype == np.uint16 else 8
    ds.HighBit, ds.PixelRepresentation, ds.PixelData = ds.BitsStored - 1, 0, data.tobytes()
    ds.save_as(path, enforce_file_format=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="a prepared dataset folder")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--count", type=int, default=12)
    args = parser.parse_args()
    images = np.load(args.data / "query_images.npy", allow_pickle=False)[:args.count]
    args.out.mkdir(parents=True, exist_ok=True)
    for i, small in enumerate(images):
        big = np.asarray(Image.fromarray(small).resize((224, 224), Image.Resampling.BICUBIC))
        kind = i % 5
        if kind == 0:
            Image.fromarray(big).save(args.out / f"scan-{i:03d}.png")
        elif kind == 1:
            Image.fromarray(big).save(args.out / f"scan-{i:03d}.jpg", quality=95)
        elif kind == 2:
            Image.fromarray(big.astype(np.uint16) * 257).save(args.out / f"scan-{i:03d}.tif")
        else:
            _dicom(args.out / f"scan-{i:03d}.dcm", big, monochrome1=kind == 4)
    print(f"wrote {len(images)} scans to {args.out}")


if __name__ == "__main__":
    main()
