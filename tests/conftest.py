"""Shared fixtures: tiny MedMNIST-format `.npz` files made in `tmp_path`, and real-data lookup."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from dnhcli.bench.pacs_server import DICOMWEB_PLUGIN, OrthancServer
from dnhcli.bench.pg_servers import MissingPart, PostgresServer
from dnhcli.data import medmnist_source

REAL_MEDMNIST = Path(os.environ.get(
    "DNH_TEST_MEDMNIST", Path(__file__).resolve().parents[1].parent / "shared" / "medmnist"))

# flag -> (images per official split, label width, number of label values, channels)
FAKE_SUBSETS = {
    "breastmnist": ((30, 6, 12), 1, 2, 1),
    "retinamnist": ((40, 8, 16), 1, 5, 3),
    "chestmnist": ((40, 8, 16), 14, 2, 1),
}


def make_npz(path: Path, counts: tuple[int, int, int], width: int, values: int, channels: int,
             seed: int = 0) -> None:
    """Write a MedMNIST-format file with random pixels and labels (every label value used)."""
    rng = np.random.default_rng(seed)
    arrays = {}
    for split, n in zip(("train", "val", "test"), counts):
        shape = (n, 28, 28) if channels == 1 else (n, 28, 28, channels)
        arrays[f"{split}_images"] = rng.integers(0, 256, shape, dtype=np.uint8)
        if width == 1:
            labels = (np.arange(n) % values)[:, None]
        else:  # multi-label: a third with no finding, the rest random findings
            labels = rng.integers(0, 2, (n, width)) * (np.arange(n)[:, None] % 3 != 0)
        arrays[f"{split}_labels"] = labels.astype(np.uint8)
    np.savez(path, **arrays)


@pytest.fixture
def fake_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A MedMNIST root with small fake breast, retina (RGB) and chest (multi-label) files;
    INFO is patched so their MD5s check out and their URLs point at a local mirror."""
    root, mirror = tmp_path / "medmnist-root", tmp_path / "mirror"
    root.mkdir()
    mirror.mkdir()
    info = {flag: dict(entry) for flag, entry in medmnist_source.medmnist_info().items()}
    for i, (flag, (counts, width, values, channels)) in enumerate(FAKE_SUBSETS.items()):
        make_npz(mirror / f"{flag}.npz", counts, width, values, channels, seed=i)
        (root / f"{flag}.npz").write_bytes((mirror / f"{flag}.npz").read_bytes())
        info[flag]["MD5"] = hashlib.md5((mirror / f"{flag}.npz").read_bytes()).hexdigest()
        info[flag]["url"] = (mirror / f"{flag}.npz").as_uri()
    monkeypatch.setattr(medmnist_source, "medmnist_info", lambda: info)
    return root


@pytest.fixture(scope="session")
def synthetic_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small prepared synthetic dataset (30 images per class), made once per session."""
    from dnhcli.data.prepare import PrepareConfig, prepare_dataset

    out = tmp_path_factory.mktemp("data") / "synthetic"
    prepare_dataset(PrepareConfig(out=out, synthetic=True, synthetic_per_class=30, seed=0))
    return out


@pytest.fixture(scope="session")
def trained_model(synthetic_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 16-bit model trained for 3 epochs on the synthetic set: its last.pt."""
    from dnhcli.training.config import preset
    from dnhcli.training.trainer import TrainConfig, train

    out = tmp_path_factory.mktemp("model") / "run"
    hp = preset("reference", epochs=3, batch_size=64, bits=16, seed=0, quantization=0.1)
    return train(TrainConfig(data=synthetic_dataset, out=out, hparams=hp, threads=1)).last


@pytest.fixture(scope="session")
def exported(trained_model: Path, synthetic_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`trained_model` exported by `dnh export` (ONNX + OpenVINO IR), checked to hash alike."""
    from dnhcli.deploy.export import ExportConfig, export_model

    out = tmp_path_factory.mktemp("export") / "model"
    result = export_model(ExportConfig(model=trained_model, out=out, data=synthetic_dataset))
    assert result.bit_agreement == 1.0 and result.verify_images > 0
    assert result.agreement["openvino_cpu_f32"]["codes_differing"] == 0
    return out


@pytest.fixture
def real_medmnist() -> Path:
    """The real MedMNIST files in ../shared/medmnist; the test is skipped without them."""
    needed = ("breastmnist.npz", "pneumoniamnist.npz", "retinamnist.npz")
    if not all((REAL_MEDMNIST / name).is_file() for name in needed):
        pytest.skip(f"real MedMNIST files not found in {REAL_MEDMNIST}")
    return REAL_MEDMNIST


def write_dicom(path: Path, pixels: np.ndarray, *, photometric: str = "MONOCHROME2", bits: int | None = None,
                slope: float | None = None, intercept: float | None = None,
                window: tuple[float, float] | None = None, syntax: str = "1.2.840.10008.1.2.1",
                pixel_data: bytes | None = None, preamble: bool = True, **extra: object) -> Path:
    """A DICOM file made with pydicom: (H, W) or (frames, H, W) grey, or (H, W, 3) RGB pixels."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import UID, generate_uid

    pixels = np.asarray(pixels)
    colour = pixels.ndim == 3 and pixels.shape[2] == 3
    frames = pixels.shape[0] if pixels.ndim == 3 and not colour else 1
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID("1.2.840.10008.5.1.4.1.1.7")
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = UID(syntax)
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.PatientName, ds.PatientBirthDate, ds.PatientID = "Doe^Jane", "19700101", "P-12345"
    ds.Modality, ds.BodyPartExamined = "CR", "CHEST"
    ds.Rows, ds.Columns = pixels.shape[-3:-1] if colour else pixels.shape[-2:]
    ds.SamplesPerPixel = 3 if colour else 1
    ds.PhotometricInterpretation = "RGB" if colour else photometric
    if colour:
        ds.PlanarConfiguration = 0
    item_bits = pixels.dtype.itemsize * 8
    ds.BitsAllocated, ds.BitsStored = item_bits, bits or item_bits
    ds.HighBit = ds.BitsStored - 1
    ds.PixelRepresentation = 1 if pixels.dtype.kind == "i" else 0
    if frames > 1:
        ds.NumberOfFrames = frames
    if slope is not None:
        ds.RescaleSlope, ds.RescaleIntercept = slope, intercept or 0.0
    if window is not None:
        ds.WindowCenter, ds.WindowWidth = window
    for key, value in extra.items():
        setattr(ds, key, value)
    ds.PixelData = pixel_data if pixel_data is not None else pixels.tobytes()
    ds.save_as(path, enforce_file_format=preamble)
    return path


@pytest.fixture
def dicom_writer():
    """`write_dicom` (see above), for tests that make their own DICOM files."""
    return write_dicom


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """One PostgreSQL server for the session (skipped where PostgreSQL or psycopg is missing)."""
    pytest.importorskip("psycopg")
    try:
        server = PostgresServer()
    except MissingPart as exc:
        pytest.skip(str(exc))
    yield server
    server.stop()


@pytest.fixture
def pg_url(postgres: PostgresServer) -> str:
    """The URL of a new, empty database on the session's PostgreSQL server."""
    return postgres.database()


@pytest.fixture(scope="session")
def postgres_shards(postgres: PostgresServer) -> Iterator[list[PostgresServer]]:
    """Three more PostgreSQL servers, the shards of a sharded database."""
    try:
        servers = [PostgresServer() for _ in range(3)]
    except MissingPart as exc:
        pytest.skip(str(exc))
    yield servers
    for server in servers:
        server.stop()


@pytest.fixture
def sharded_url(postgres: PostgresServer, postgres_shards: list[PostgresServer]) -> str:
    """A coordinator database with three shards registered (`dnh db shard add`), before its first
    `dnh hash`."""
    from dnhcli.stores.shards import add_shard

    coordinator = postgres.database()
    for server in postgres_shards:
        add_shard(coordinator, server.database())
    return coordinator


def _orthanc(dicomweb: bool = False) -> OrthancServer:
    try:
        return OrthancServer(dicomweb=dicomweb)
    except MissingPart as exc:
        pytest.skip(str(exc))


@pytest.fixture
def orthanc() -> Iterator[OrthancServer]:
    """A fresh, empty Orthanc for one test (skipped where Orthanc is not installed)."""
    server = _orthanc()
    yield server
    server.stop()


@pytest.fixture
def orthanc_dicomweb() -> Iterator[OrthancServer]:
    """A fresh, empty Orthanc with its DICOMweb plugin at `dicomweb_url` (skipped where the
    plugin is not installed)."""
    if not DICOMWEB_PLUGIN.exists():
        pytest.skip(f"Orthanc's DICOMweb plugin {DICOMWEB_PLUGIN} is missing "
                    "(apt-get install orthanc-dicomweb)")
    server = _orthanc(dicomweb=True)
    yield server
    server.stop()
