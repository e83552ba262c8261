"""DICOM files the tests make with pydicom: display values, identifiers, frames, bad files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dnhcli.data.dicom import is_dicom, read_dicom, window
from dnhcli.data.images import count_inputs, iter_files
from dnhcli.errors import InputError


def _hash_input(path: Path) -> np.ndarray:
    return np.concatenate([c.images for c in iter_files([path])])


def _ramp(shape: tuple[int, int], top: int, dtype: type) -> np.ndarray:
    return (np.arange(shape[0] * shape[1]).reshape(shape) * top // (shape[0] * shape[1] - 1)).astype(dtype)


def test_an_8_bit_dicom_hashes_like_the_same_png(tmp_path: Path, dicom_writer) -> None:
    for shape in ((28, 28), (300, 200)):
        pixels = _ramp(shape, 255, np.uint8)
        dicom = dicom_writer(tmp_path / f"{shape[0]}.dcm", pixels)
        Image.fromarray(pixels).save(tmp_path / f"{shape[0]}.png")
        assert np.array_equal(_hash_input(dicom), _hash_input(tmp_path / f"{shape[0]}.png"))


def test_monochrome1_is_inverted(tmp_path: Path, dicom_writer) -> None:
    pixels = _ramp((28, 28), 255, np.uint8)
    dicom = dicom_writer(tmp_path / "m1.dcm", pixels, photometric="MONOCHROME1")
    assert np.array_equal(_hash_input(dicom)[0], 255 - pixels)


def test_rescale_then_window_then_display_range(tmp_path: Path, dicom_writer) -> None:
    stored = _ramp((28, 28), 4095, np.uint16)  # 12 bits stored in 16
    hu = stored.astype(np.float64) * 2.0 - 1024.0
    centre, width = 40.0, 400.0
    dicom = dicom_writer(tmp_path / "ct.dcm", stored, bits=12, slope=2.0, intercept=-1024.0,
                         window=(centre, width))
    expected = np.clip((hu - (centre - 0.5)) / (width - 1) + 0.5, 0, 1)
    assert np.array_equal(_hash_input(dicom)[0], np.rint(expected * 255).astype(np.uint8))
    # without a window: the stored range (12 bits, through the rescale) onto the grey range
    plain = dicom_writer(tmp_path / "plain.dcm", stored, bits=12, slope=2.0, intercept=-1024.0)
    assert np.array_equal(_hash_input(plain)[0], np.rint(stored / 4095 * 255).astype(np.uint8))


def test_a_16_bit_copy_hashes_like_the_8_bit_picture(tmp_path: Path, dicom_writer) -> None:
    pixels = np.random.default_rng(1).integers(0, 256, (64, 80), dtype=np.uint8)
    eight = dicom_writer(tmp_path / "8.dcm", pixels)
    sixteen = dicom_writer(tmp_path / "16.dcm", pixels.astype(np.uint16) * 257)
    assert np.array_equal(_hash_input(eight), _hash_input(sixteen))


def test_window_functions_by_hand() -> None:
    x = np.array([-1000.0, 0.0, 39.5, 40.0, 1000.0])
    assert window(x, 40, 400, "LINEAR").tolist() == pytest.approx(
        [0.0, (0 - 39.5) / 399 + 0.5, 0.5, 0.5 + 0.5 / 399, 1.0])
    assert window(x, 40, 400, "LINEAR_EXACT")[3] == pytest.approx(0.5)
    assert window(np.array([40.0]), 40, 400, "SIGMOID")[0] == pytest.approx(0.5)
    with pytest.raises(InputError, match="invalid VOI window"):
        window(x, 40, 0)


def test_frames_identifiers_and_no_patient_data(tmp_path: Path, dicom_writer) -> None:
    frames = np.stack([np.full((32, 32), v, np.uint8) for v in (10, 120, 250)])
    dicom = dicom_writer(tmp_path / "cine.dcm", frames)
    chunks = list(iter_files([dicom]))
    meta = [m for c in chunks for m in c.metadata]
    assert [m["frame"] for m in meta] == [0, 1, 2] and {m["frames"] for m in meta} == {3}
    assert [int(c) for c in np.concatenate([c.images for c in chunks])[:, 0, 0]] == [10, 120, 250]
    assert count_inputs([dicom]) == 3
    first = meta[0]
    assert first["modality"] == "CR" and first["body_part"] == "CHEST"
    assert {"sop_instance_uid", "study_instance_uid", "series_instance_uid"} <= set(first)
    text = repr(meta)
    assert "Doe" not in text and "19700101" not in text and "P-12345" not in text


def test_dicom_is_found_by_its_preamble(tmp_path: Path, dicom_writer) -> None:
    folder = tmp_path / "series" / "1"
    folder.mkdir(parents=True)
    dicom_writer(folder / "IM0001", np.zeros((28, 28), np.uint8))
    (folder / "README").write_text("not an image")
    assert is_dicom(folder / "IM0001") and not is_dicom(folder / "README")
    assert len(_hash_input(tmp_path)) == 1  # found in a subfolder, without a suffix


def test_colour_dicom(tmp_path: Path, dicom_writer) -> None:
    rgb = np.zeros((28, 28, 3), np.uint8)
    rgb[..., 0] = 200
    dicom = dicom_writer(tmp_path / "rgb.dcm", rgb)
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    assert np.array_equal(_hash_input(dicom), _hash_input(tmp_path / "rgb.png"))


def test_bad_dicom_files_get_one_clear_error(tmp_path: Path, dicom_writer) -> None:
    from pydicom.encaps import encapsulate

    good = dicom_writer(tmp_path / "good.dcm", np.zeros((64, 64), np.uint16))
    (tmp_path / "truncated.dcm").write_bytes(good.read_bytes()[:-3000])
    (tmp_path / "garbage.dcm").write_bytes(b"\x00" * 128 + b"DICM" + b"\xff" * 50)
    no_pixels = dicom_writer(tmp_path / "nopixels.dcm", np.zeros((28, 28), np.uint8))
    import pydicom

    ds = pydicom.dcmread(no_pixels)
    del ds.PixelData
    ds.save_as(no_pixels)
    dicom_writer(tmp_path / "jpegls.dcm", np.zeros((28, 28), np.uint8), syntax="1.2.840.10008.1.2.4.80",
                 pixel_data=encapsulate([b"\xff\xd8 not really JPEG-LS \xff\xd9"]))
    dicom_writer(tmp_path / "huge.dcm", np.zeros((28, 28), np.uint8), Rows=60000, Columns=60000)
    dicom_writer(tmp_path / "strip.dcm", np.zeros((1, 400), np.uint8))
    for name, message in (("truncated.dcm", "truncated|not a readable|does not match"),
                          ("garbage.dcm", "not a readable DICOM|no pixel data"),
                          ("nopixels.dcm", "no pixel data"), ("jpegls.dcm", "JPEG-LS"),
                          ("huge.dcm", "than dnh reads"), ("strip.dcm", "too small")):
        with pytest.raises(InputError, match=message):
            read_dicom(tmp_path / name) if name != "strip.dcm" else list(iter_files([tmp_path / name]))


def test_a_voi_lut_sequence_is_applied_and_scaled_by_its_depth(tmp_path: Path, dicom_writer) -> None:
    import pydicom
    from pydicom.dataset import Dataset

    pixels = _ramp((28, 28), 255, np.uint8)
    path = dicom_writer(tmp_path / "lut.dcm", pixels)
    ds = pydicom.dcmread(path)
    item = Dataset()
    item.add_new(0x00283002, "US", [256, 0, 10])  # LUT Descriptor: 256 entries from 0, 10 bits
    item.add_new(0x00283006, "US", [4 * v for v in range(256)])  # LUT Data
    ds.VOILUTSequence = [item]
    ds.save_as(path)
    expected = np.rint(pixels.astype(np.float64) * 4 / 1023 * 255).astype(np.uint8)
    assert np.array_equal(_hash_input(path)[0], expected)
