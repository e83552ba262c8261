"""A local Ray for the ingest tests (skipped where Ray is not installed), and folders of
mixed inputs to hash."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[None]:
    """Ray started once for the session on 2 CPUs (no deprecated local mode)."""
    ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'dnhcli[ray]')")
    pytest.importorskip("ray.data")
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture
def mixed_inputs(tmp_path: Path, synthetic_dataset: Path, dicom_writer) -> Path:
    """A folder of every kind `dnh hash` reads: PNG, 16-bit TIFF, a .npy stack, one- and
    two-frame 16-bit DICOM, in a subfolder too."""
    from PIL import Image

    images = np.load(synthetic_dataset / "query_images.npy")[:12]
    folder = tmp_path / "inputs"
    (folder / "sub").mkdir(parents=True)
    for i in range(3):
        Image.fromarray(np.kron(images[i], np.ones((3, 3), np.uint8))).save(folder / f"p{i}.png")
    Image.fromarray(images[3].astype(np.uint16) * 257).save(folder / "sub" / "deep.tif")
    np.save(folder / "stack.npy", images[4:9])
    for i in range(9, 11):
        big = np.kron(images[i], np.ones((8, 8), np.uint8)).astype(np.uint16) * 200
        dicom_writer(folder / "sub" / f"d{i}.dcm", big, window=(25000.0, 50000.0))
    dicom_writer(folder / "frames.dcm", np.stack([images[0], images[11]]))
    return folder
