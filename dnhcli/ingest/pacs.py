"""The client of a PACS source URL: Orthanc's REST API or DICOMweb (`dnhcli.ingest.sources`)."""

from __future__ import annotations

from dnhcli.errors import InputError
from dnhcli.ingest.sources import SCHEMES, Source


def open_source(url: str) -> Source:
    """The client for a source URL (see the module doc)."""
    kind = SCHEMES.get(url.split("://", 1)[0].lower())
    if kind == "orthanc":
        from dnhcli.ingest.orthanc import Orthanc

        return Orthanc(url)
    if kind == "dicomweb":
        from dnhcli.ingest.dicomweb import DicomWeb

        return DicomWeb(url)
    raise InputError(f"unsupported PACS URL {url!r}",
                     hint="give orthanc+http://host:port or dicomweb+http://host:port/path")
