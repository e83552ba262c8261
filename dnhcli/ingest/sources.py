"""PACS sources: where `dnh hash --source URL` lists DICOM instances and fetches their files.

    orthanc+http://host:8042           Orthanc's REST API (`dnhcli.ingest.orthanc`)
    dicomweb+http://host:port/path     any DICOMweb server: QIDO-RS lists, WADO-RS fetches
                                       (`dnhcli.ingest.dicomweb`)

(`+https` too; `user:password@` for HTTP basic auth.) A source lists instances keyed by
SOPInstanceUID before anything is downloaded, so a re-run fetches only new instances.
"""

from __future__ import annotations

import base64
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol
from urllib.parse import urlsplit, urlunsplit

from dnhcli.errors import DataError, InputError

SCHEMES = {"orthanc+http": "orthanc", "orthanc+https": "orthanc",
           "dicomweb+http": "dicomweb", "dicomweb+https": "dicomweb"}


class MissingInstance(InputError):
    """One instance could not be fetched (deleted since it was listed, or refused): skipped
    and reported like an undecodable image, while an unreachable server stops the run."""


@dataclass(frozen=True)
class Instance:
    """One listed instance: the server's handle to fetch it by, its SOPInstanceUID, and its
    frame count as listed (1 where the listing does not say)."""

    ident: str
    uid: str
    frames: int = 1


class Source(Protocol):
    kind: str  # "orthanc" or "dicomweb"
    shown: str  # the server's URL without credentials, for messages and metadata

    def instances(self, since: datetime | None = None) -> Iterator[Instance]:
        """Every instance, or those received since `since` (DICOMweb: of studies dated since)."""
        ...

    def fetch(self, instance: Instance) -> bytes:
        """The instance's DICOM file (Part 10 bytes); `MissingInstance` if the server no
        longer has it, `DataError` if the server cannot be reached."""
        ...


def is_pacs(text: str) -> bool:
    return text.split("://", 1)[0].lower() in SCHEMES


class HttpClient:
    """GET requests to one server (standard library only): `shown` is the base URL without
    its credentials, which go in a basic Authorization header instead."""

    name = "the server"

    def __init__(self, url: str) -> None:
        if not is_pacs(url):
            raise InputError(f"unsupported PACS URL {url!r}",
                             hint="give orthanc+http://host:port or dicomweb+http://host:port/path")
        parts = urlsplit(url.split("+", 1)[1])
        if not parts.hostname:
            raise InputError(f"no host in the PACS URL {url!r}", hint="give orthanc+http://host:port")
        try:
            port = parts.port
        except ValueError:
            raise InputError(f"bad port in the PACS URL {url!r}") from None
        self.shown = urlunsplit((parts.scheme, parts.hostname + (f":{port}" if port else ""),
                                 parts.path.rstrip("/"), "", ""))
        self.auth = (base64.b64encode(f"{parts.username}:{parts.password or ''}".encode()).decode()
                     if parts.username else None)

    def get(self, path: str, accept: str | None = None, missing_ok: bool = False
            ) -> tuple[bytes, dict[str, str]]:
        """The body and headers of GET `path` (relative to `shown`); a 404 raises
        `MissingInstance` where `missing_ok`, every other failure a one-line `DataError`."""
        request = urllib.request.Request(self.shown + path)
        if self.auth:
            request.add_header("Authorization", f"Basic {self.auth}")
        if accept:
            request.add_header("Accept", accept)
        try:
            with urllib.request.urlopen(request, timeout=120) as answer:
                return answer.read(), dict(answer.headers.items())
        except urllib.error.HTTPError as exc:
            if missing_ok and exc.code in (404, 410):
                raise MissingInstance(f"{self.name} at {self.shown} no longer has {path} "
                                      f"({exc.code})") from None
            raise DataError(f"{self.name} at {self.shown} answered {exc.code} to GET {path}",
                            hint="check the URL, and the user and password if it asks for them") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise DataError(f"cannot reach {self.name} at {self.shown}: {reason}",
                            hint="is the server running, and the host and port right?") from None
