"""Images straight from a PACS: the instances of an Orthanc server, through its REST API.

    orthanc+http://host:8042        (orthanc+https:// too; user:password@ for HTTP basic auth)

The instances are listed page by page (`GET /instances?expand`), keyed by SOPInstanceUID
before anything is downloaded (`dicom:<uid>`, with `[frame]` per frame, as DICOM files are),
so a re-run fetches only new instances. Each new instance's file (`GET /instances/{id}/file`)
is read in memory by dnh's DICOM reader, so its preprocessing is that of a file. The study,
series and instance identifiers, modality and body part go into the metadata; the patient's
name and every other patient attribute never do.
"""

from __future__ import annotations

import base64
import io
import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import numpy as np

from dnhcli.data import keys, preprocess
from dnhcli.data.dicom import read_dicom
from dnhcli.data.images import ImageChunk
from dnhcli.errors import DataError, InputError

SCHEMES = ("orthanc+http", "orthanc+https")
PAGE = 1000
Stored = Any  # keys -> bool array of those stored already


def is_pacs(text: str) -> bool:
    return text.split("://", 1)[0].lower() in SCHEMES


@dataclass(frozen=True)
class Instance:
    ident: str  # Orthanc's id
    uid: str  # SOPInstanceUID
    frames: int


class Orthanc:
    """A minimal client of Orthanc's REST API (standard library only)."""

    def __init__(self, url: str) -> None:
        if not is_pacs(url):
            raise InputError(f"unsupported PACS URL {url!r}", hint="give orthanc+http://host:port")
        parts = urlsplit(url.split("+", 1)[1])
        self.shown = urlunsplit((parts.scheme, parts.hostname + (f":{parts.port}" if parts.port else ""),
                                 parts.path.rstrip("/"), "", "")) if parts.hostname else url
        self.auth = (base64.b64encode(f"{parts.username}:{parts.password or ''}".encode()).decode()
                     if parts.username else None)

    def get(self, path: str) -> bytes:
        request = urllib.request.Request(self.shown + path)
        if self.auth:
            request.add_header("Authorization", f"Basic {self.auth}")
        try:
            with urllib.request.urlopen(request, timeout=120) as answer:
                return answer.read()
        except urllib.error.HTTPError as exc:
            raise DataError(f"Orthanc at {self.shown} answered {exc.code} to GET {path}",
                            hint="check the URL, and the user and password if it asks for them") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise DataError(f"cannot reach Orthanc at {self.shown}: {reason}",
                            hint="is the server running, and the host and port right?") from None

    def instances(self) -> Iterator[Instance]:
        """Every instance, page by page, in Orthanc's order."""
        since = 0
        while True:
            try:
                page = json.loads(self.get(f"/instances?expand&since={since}&limit={PAGE}"))
            except ValueError:
                raise DataError(f"{self.shown} did not answer Orthanc's JSON to /instances") from None
            for item in page:
                tags = item.get("MainDicomTags", {})
                frames = int(tags.get("NumberOfFrames", 1) or 1)
                yield Instance(item["ID"], tags.get("SOPInstanceUID") or item["ID"], frames)
            if len(page) < PAGE:
                return
            since += len(page)


def iter_orthanc(url: str, chunk: int, side: int, stored: Stored) -> Iterator[ImageChunk]:
    """The new images of an Orthanc server as model inputs, `chunk` at a time, with keys and
    metadata; instances whose keys `stored` marks are not downloaded."""
    client = Orthanc(url)
    images: list[np.ndarray] = []
    metas: list[dict[str, Any]] = []
    for instance in client.instances():
        names = keys.item_keys(f"dicom:{instance.uid}", instance.frames, instance.frames > 1)
        keep = ~stored(names)  # asked once per key: the test also remembers the keys it met
        if not keep.any():
            continue
        source = f"orthanc:{instance.ident}"
        frames, tags = read_dicom(io.BytesIO(client.get(f"/instances/{instance.ident}/file")), source)
        if len(frames) != len(names):  # the listing and the pixels disagree: the pixels win
            names = keys.item_keys(f"dicom:{instance.uid}", len(frames), len(frames) > 1)
            keep = ~stored(names)
        for i in np.flatnonzero(keep).tolist():
            images.append(preprocess.fit(frames[i], side, source))
            metas.append({"source": source if len(frames) == 1 else f"{source}[{i}]", "pacs": client.shown,
                          "instance": instance.ident, **tags[i], "key": names[i]})
            if len(images) == chunk:
                yield ImageChunk(np.stack(images), metas)
                images, metas = [], []
    if images:
        yield ImageChunk(np.stack(images), metas)


def count_orthanc(url: str) -> int:
    """How many images the server holds (frames counted), from the listing alone."""
    return sum(instance.frames for instance in Orthanc(url).instances())

