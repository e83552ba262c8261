"""Any DICOMweb server as a PACS source (`dicomweb+http://host:port/base/path`).

Instances are listed page by page with QIDO-RS (`GET {base}/instances?limit&offset`, answered in
DICOM JSON) and fetched one by one with WADO-RS (`GET {base}/studies/{study}/series/{series}/
instances/{sop}`, a multipart/related body whose first part is the Part-10 file).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from email.message import Message
from typing import Any
from urllib.parse import urlencode

from dnhcli.errors import DataError
from dnhcli.ingest.sources import HttpClient, Instance, MissingInstance

PAGE = 1000
DICOM_JSON = "application/dicom+json"
MULTIPART_DICOM = 'multipart/related; type="application/dicom"'

SOP_UID, STUDY_UID, SERIES_UID, FRAMES = "00080018", "0020000D", "0020000E", "00280008"


class DicomWeb(HttpClient):
    kind = "dicomweb"
    name = "the DICOMweb server"

    def instances(self, since: datetime | None = None) -> Iterator[Instance]:
        """Every instance, or with `since` those of studies dated on or after that day: QIDO-RS
        has no filter on when the server received an instance, only on the StudyDate."""
        query: dict[str, str | int] = {"includefield": FRAMES}
        if since is not None:
            query["StudyDate"] = since.strftime("%Y%m%d") + "-"
        offset = 0
        while True:
            path = "/instances?" + urlencode({"limit": PAGE, "offset": offset, **query})
            body, _ = self.get(path, accept=DICOM_JSON)
            if not body.strip():  # 204 No Content, or an empty 200: no more results
                return
            try:
                page = json.loads(body)
            except ValueError:
                page = None
            if not isinstance(page, list) or not all(isinstance(item, dict) for item in page):
                raise DataError(f"{self.shown} did not answer DICOM JSON to GET {path}",
                                hint="give the DICOMweb root (the path before /studies), e.g. "
                                     "dicomweb+http://host:8042/dicom-web")
            for item in page:
                instance = _instance(item)
                if instance is not None:
                    yield instance
            if len(page) < PAGE:
                return
            offset += len(page)

    def fetch(self, instance: Instance) -> bytes:
        study, series, sop = instance.ident.split("/")
        path = f"/studies/{study}/series/{series}/instances/{sop}"
        body, headers = self.get(path, accept=MULTIPART_DICOM, missing_ok=True)
        content_type = next((v for k, v in headers.items() if k.lower() == "content-type"), "")
        part = first_part(body, content_type)
        if not part:
            raise MissingInstance(f"{self.name} at {self.shown} answered GET {path} with no DICOM file "
                                  f"(a {content_type or 'untyped'} body of {len(body)} bytes, not "
                                  "multipart/related with a part)")
        return part


def first_part(body: bytes, content_type: str) -> bytes | None:
    """The first part of a multipart body (RFC 2046) whose boundary is given in `content_type`,
    or None where the body is not multipart or holds no part."""
    header = Message()
    header["Content-Type"] = content_type
    boundary = header.get_boundary() if header.get_content_maintype() == "multipart" else None
    if not boundary:
        return None
    delimiter = b"--" + boundary.encode("latin-1", "replace")
    # The CRLF before a delimiter belongs to the delimiter, not to the part before it; a preamble
    # may come before the first one.
    if body.startswith(delimiter):
        after = len(delimiter)
    else:
        found = body.find(b"\r\n" + delimiter)
        if found < 0:
            return None
        after = found + 2 + len(delimiter)
    if body.startswith(b"--", after):
        return None  # the closing delimiter: no part at all
    line_end = body.find(b"\r\n", after)  # past any padding after the boundary
    if line_end < 0:
        return None
    if body.startswith(b"\r\n", line_end + 2):
        start = line_end + 4  # a part without headers
    else:
        blank = body.find(b"\r\n\r\n", line_end + 2)
        if blank < 0:
            return None
        start = blank + 4
    # From 2 bytes back: an empty part's blank line may end in the next delimiter's CRLF.
    end = body.find(b"\r\n" + delimiter, start - 2)
    if end < 0:
        return None  # truncated before the next delimiter
    return body[start:max(end, start)]


def _instance(item: dict[str, Any]) -> Instance | None:
    uids = [_value(item, tag) for tag in (STUDY_UID, SERIES_UID, SOP_UID)]
    if not all(isinstance(uid, str) and uid for uid in uids):
        return None
    study, series, sop = (str(uid).strip() for uid in uids)
    try:
        frames = int(_value(item, FRAMES) or 1)
    except (TypeError, ValueError):
        frames = 1
    return Instance(f"{study}/{series}/{sop}", sop, max(frames, 1))


def _value(item: dict[str, Any], tag: str) -> Any:
    """The first value of `tag` in a DICOM JSON object (tags are upper-case hex, but some servers
    answer lower case), or None."""
    element = item.get(tag) or item.get(tag.lower())
    values = element.get("Value") if isinstance(element, dict) else None
    return values[0] if isinstance(values, list) and values else None
