"""The DICOMweb source against a real Orthanc with its DICOMweb plugin, and its multipart parser
on crafted bodies."""

from __future__ import annotations

import json
import threading
import urllib.request
from collections.abc import Iterator
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pydicom
import pytest

from dnhcli.errors import DataError
from dnhcli.ingest import dicomweb
from dnhcli.ingest.dicomweb import DicomWeb, first_part
from dnhcli.ingest.sources import Instance, MissingInstance


def _file(folder: Path, dicom_writer, name: str, frames: int = 1, **extra: object) -> Path:
    """A small 16-bit DICOM file (`frames` frames); `extra` sets tags such as StudyDate."""
    pixels = (np.arange(frames * 12 * 10, dtype=np.uint16).reshape(frames, 12, 10) * 97)
    folder.mkdir(exist_ok=True)
    return dicom_writer(folder / name, pixels if frames > 1 else pixels[0], **extra)


def _expected(path: Path, frames: int = 1) -> Instance:
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    study, series, sop = ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID
    return Instance(f"{study}/{series}/{sop}", sop, frames)


def _source(server) -> DicomWeb:
    return DicomWeb("dicomweb+" + server.dicomweb_url)


def test_lists_and_fetches_every_instance(orthanc_dicomweb, tmp_path: Path, dicom_writer) -> None:
    first = _file(tmp_path, dicom_writer, "a.dcm")
    same_series = {"StudyInstanceUID": pydicom.dcmread(first).StudyInstanceUID,
                   "SeriesInstanceUID": pydicom.dcmread(first).SeriesInstanceUID}
    files = {first: 1, _file(tmp_path, dicom_writer, "b.dcm", **same_series): 1,
             _file(tmp_path, dicom_writer, "frames.dcm", frames=2): 2}
    for path in files:
        orthanc_dicomweb.upload(path.read_bytes())
    source = _source(orthanc_dicomweb)
    assert source.kind == "dicomweb" and source.shown == orthanc_dicomweb.dicomweb_url
    listed = list(source.instances())
    expected = [_expected(path, frames) for path, frames in files.items()]
    assert sorted(listed, key=lambda i: i.uid) == sorted(expected, key=lambda i: i.uid)
    by_uid = {i.uid: i for i in listed}
    for path in files:
        fetched = source.fetch(by_uid[pydicom.dcmread(path).SOPInstanceUID])
        assert fetched == path.read_bytes()  # Orthanc sends the stored file untouched


@pytest.mark.parametrize("count", [4, 5])
def test_lists_page_by_page(orthanc_dicomweb, tmp_path: Path, dicom_writer, monkeypatch, count: int) -> None:
    files = [_file(tmp_path, dicom_writer, f"s{i}.dcm") for i in range(count)]
    for path in files:
        orthanc_dicomweb.upload(path.read_bytes())
    monkeypatch.setattr(dicomweb, "PAGE", 2)
    asked: list[str] = []
    source = _source(orthanc_dicomweb)
    real_get = source.get

    def get(path: str, **kw):  # the real request, recorded
        asked.append(path)
        return real_get(path, **kw)

    monkeypatch.setattr(source, "get", get)
    uids = [i.uid for i in source.instances()]
    assert sorted(uids) == sorted(pydicom.dcmread(p).SOPInstanceUID for p in files)
    assert len(asked) == count // 2 + 1 and all("limit=2" in path for path in asked)
    offsets = [path.split("offset=")[1].split("&")[0] for path in asked]
    assert offsets == [str(2 * n) for n in range(len(asked))]


def test_since_keeps_studies_dated_on_or_after_that_day(
    orthanc_dicomweb, tmp_path: Path, dicom_writer
) -> None:
    dated = {day: _file(tmp_path, dicom_writer, f"{day}.dcm", StudyDate=day)
             for day in ("20231231", "20240105", "20240301")}
    for path in dated.values():
        orthanc_dicomweb.upload(path.read_bytes())
    source = _source(orthanc_dicomweb)
    uids = {day: pydicom.dcmread(path).SOPInstanceUID for day, path in dated.items()}
    assert {i.uid for i in source.instances(since=datetime(2024, 1, 5, 23, 59))} == {
        uids["20240105"], uids["20240301"]}
    assert {i.uid for i in source.instances(since=datetime(2024, 3, 2))} == set()
    assert {i.uid for i in source.instances(since=datetime(2000, 1, 1))} == set(uids.values())


def test_a_missing_instance_is_skippable(orthanc_dicomweb, tmp_path: Path, dicom_writer) -> None:
    path = _file(tmp_path, dicom_writer, "gone.dcm")
    orthanc_id = orthanc_dicomweb.upload(path.read_bytes())
    source = _source(orthanc_dicomweb)
    [listed] = source.instances()
    request = urllib.request.Request(f"{orthanc_dicomweb.url}/instances/{orthanc_id}", method="DELETE")
    urllib.request.urlopen(request, timeout=30).read()
    with pytest.raises(MissingInstance):
        source.fetch(listed)
    with pytest.raises(MissingInstance):
        source.fetch(Instance("1.2.3/1.2.3.4/1.2.3.4.5", "1.2.3.4.5"))


def test_orthancs_own_api_is_not_dicomweb(orthanc_dicomweb) -> None:
    with pytest.raises(DataError, match="answered 400"):
        list(DicomWeb("dicomweb+" + orthanc_dicomweb.url).instances())


def test_an_unreachable_server_stops_the_run() -> None:
    source = DicomWeb("dicomweb+http://127.0.0.1:9/dicom-web")
    with pytest.raises(DataError, match="cannot reach"):
        list(source.instances())
    with pytest.raises(DataError, match="cannot reach"):
        source.fetch(Instance("1.2/1.3/1.4", "1.4"))


class _Odd(BaseHTTPRequestHandler):
    """A server answering QIDO-RS with HTML (under /html) or a JSON list of ids (under /ids), and
    WADO-RS with a bare application/dicom body."""

    def do_GET(self) -> None:  # noqa: N802 - the name http.server calls
        if "/instances?" not in self.path:
            body, kind = b"DICM-not-multipart", "application/dicom"
        elif self.path.startswith("/ids/"):
            body, kind = b'["0a1b2c", "3d4e5f"]', "application/json"
        else:
            body, kind = b"<html>sign in</html>", "text/html"
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def odd_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Odd)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"dicomweb+http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_a_page_that_is_not_json_or_a_body_that_is_not_multipart(odd_server: str) -> None:
    source = DicomWeb(odd_server + "/html")
    with pytest.raises(DataError, match="did not answer DICOM JSON"):
        list(source.instances())
    with pytest.raises(DataError, match="did not answer DICOM JSON"):
        list(DicomWeb(odd_server + "/ids").instances())
    with pytest.raises(MissingInstance, match="no DICOM file"):
        source.fetch(Instance("1.2/1.3/1.4", "1.4"))


# the multipart parser on crafted bodies
NASTY = b"DICM\r\n--\r\n--not-the-boundary\r\n\r\n--xyz\x00\xff--\r\n"


def _multipart(boundary: bytes, *parts: bytes, preamble: bytes = b"", headers: bool = True) -> bytes:
    head = b"Content-Type: application/dicom\r\n" if headers else b""
    body = b"".join(b"--" + boundary + b"\r\n" + head + b"\r\n" + part + b"\r\n" for part in parts)
    return preamble + body + b"--" + boundary + b"--\r\n"


@pytest.mark.parametrize("content_type", [
    'multipart/related; type="application/dicom"; boundary="b0und:ary x"',
    'multipart/related; boundary="b0und:ary x"; type="application/dicom"',
    'Multipart/Related;type="application/dicom";boundary="b0und:ary x"',
])
def test_first_part_with_a_quoted_boundary(content_type: str) -> None:
    body = _multipart(b"b0und:ary x", NASTY, b"second")
    assert first_part(body, content_type) == NASTY


def test_first_part_keeps_crlf_and_dashes_of_the_payload() -> None:
    for payload in (NASTY, b"\r\n", b"--", b"\r\n--", b"ends with crlf\r\n\r\n", bytes(range(256)) * 4):
        body = _multipart(b"abc123", payload)
        assert first_part(body, "multipart/related; boundary=abc123") == payload
        assert first_part(body + b"epilogue\r\n--abc123\r\n", "multipart/related; boundary=abc123") == payload


def test_first_part_after_a_preamble_or_without_headers() -> None:
    body = _multipart(b"abc", NASTY, preamble=b"This is a preamble --abc.\r\n")
    assert first_part(body, "multipart/related; boundary=abc") == NASTY
    assert first_part(_multipart(b"abc", NASTY, headers=False), "multipart/related; boundary=abc") == NASTY
    assert first_part(b"--abc\r\nA: b\r\n\r\n--abc--", "multipart/related; boundary=abc") == b""


@pytest.mark.parametrize(("body", "content_type"), [
    (b"--abc--\r\n", "multipart/related; boundary=abc"),  # no part
    (_multipart(b"abc", NASTY), "multipart/related; boundary=other"),  # the wrong boundary
    (_multipart(b"abc", NASTY), "multipart/related"),  # no boundary
    (_multipart(b"abc", NASTY), "application/dicom"),  # not multipart
    (_multipart(b"abc", NASTY), ""),
    (b"--abc\r\nContent-Type: application/dicom\r\n\r\nDICM cut short", "multipart/related; boundary=abc"),
    (b"", "multipart/related; boundary=abc"),
])
def test_first_part_of_bodies_without_one(body: bytes, content_type: str) -> None:
    assert first_part(body, content_type) is None


def test_first_part_agrees_with_orthancs_answer_shape() -> None:
    """The shape Orthanc's plugin sends: part headers with a Content-Length, then the closing
    delimiter with a trailing CRLF."""
    payload = json.dumps({"x": "--b\r\n"}).encode() + NASTY
    body = (b"--b\r\nContent-Type: application/dicom\r\nContent-Length: " + str(len(payload)).encode()
            + b"\r\nMIME-Version: 1.0\r\n\r\n" + payload + b"\r\n--b--\r\n")
    assert first_part(body, 'multipart/related; type="application/dicom"; boundary=b') == payload
