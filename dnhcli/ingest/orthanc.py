"""Orthanc's REST API as a PACS source (`orthanc+http://host:8042`).

Instances are listed page by page (`GET /instances?expand`) or, for a nightly run, from
Orthanc's change log (`GET /changes`: the `NewInstance` events after a sequence number, or
after a date found by bisecting the log), and fetched whole (`GET /instances/{id}/file`).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from dnhcli.errors import DataError
from dnhcli.ingest.sources import HttpClient, Instance, MissingInstance

PAGE = 1000


class Orthanc(HttpClient):
    kind = "orthanc"
    name = "Orthanc"

    def json(self, path: str, missing_ok: bool = False) -> Any:
        body, _ = self.get(path, missing_ok=missing_ok)
        try:
            return json.loads(body)
        except ValueError:
            raise DataError(f"{self.shown} did not answer Orthanc's JSON to {path}",
                            hint="is this an Orthanc server?") from None

    def instances(self, since: datetime | None = None) -> Iterator[Instance]:
        """Every instance in Orthanc's order, or those received at or after `since` (UTC)."""
        if since is not None:
            yield from self.instances_after(self.change_before(since))
            return
        start = 0
        while True:
            page = self.json(f"/instances?expand&since={start}&limit={PAGE}")
            yield from (_instance(item) for item in page)
            if len(page) < PAGE:
                return
            start += len(page)

    def fetch(self, instance: Instance) -> bytes:
        return self.get(f"/instances/{instance.ident}/file", missing_ok=True)[0]

    def last_change(self) -> int:
        """The sequence number of Orthanc's newest change (0 for a new server)."""
        return int(self.json("/changes?last").get("Last", 0))

    def instances_after(self, seq: int) -> Iterator[Instance]:
        """The instances received after change `seq` and still stored, in arrival order."""
        while True:
            page = self.json(f"/changes?since={seq}&limit={PAGE}")
            for change in page.get("Changes", []):
                if change.get("ChangeType") == "NewInstance":
                    try:
                        yield _instance(self.json(f"/instances/{change['ID']}", missing_ok=True))
                    except MissingInstance:
                        continue  # deleted since it arrived
            seq = int(page.get("Last", seq))
            if page.get("Done", True) or not page.get("Changes"):
                return

    def change_before(self, since: datetime) -> int:
        """The last change sequence number dated before `since`, by bisecting the change log."""
        stamp = since.strftime("%Y%m%dT%H%M%S")
        low, high = 0, self.last_change()  # invariant: change `low` is before `since` (or 0)
        while low < high:
            middle = (low + high + 1) // 2
            changes = self.json(f"/changes?since={middle - 1}&limit=1").get("Changes", [])
            if not changes:
                high = middle - 1
            elif changes[0].get("Date", "") < stamp:
                low = max(middle, int(changes[0]["Seq"]))
            else:
                high = middle - 1
        return low


def _instance(item: dict[str, Any]) -> Instance:
    tags = item.get("MainDicomTags", {})
    frames = int(tags.get("NumberOfFrames", 1) or 1)
    return Instance(item["ID"], tags.get("SOPInstanceUID") or item["ID"], max(frames, 1))
