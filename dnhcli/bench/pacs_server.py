"""A throwaway Orthanc (the open-source PACS) for the tests, the benchmarks and the demo:
Debian's `orthanc` package run as a plain process from a JSON configuration, on a free
loopback port, with its storage in a temporary folder, optionally with its DICOMweb plugin."""

from __future__ import annotations

from pathlib import Path

from dnhcli.bench.pg_servers import MissingPart

__all__ = ["DICOMWEB_PLUGIN", "MissingPart", "OrthancServer"]

DICOMWEB_PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")  # Debian's orthanc-dicomweb


class OrthancServer:
    """Debian's Orthanc as a plain process on a free loopback port, with its storage in a
    temporary folder (no DICOM port, no remote access, no authentication)."""

    def __init__(self, dicomweb: bool = False) -> None:
        import json
        import shutil
        import socket
        import subprocess
        import tempfile
        import time
        import urllib.request

        binary = shutil.which("Orthanc") or (
            "/usr/sbin/Orthanc" if Path("/usr/sbin/Orthanc").exists() else None)
        if binary is None:
            raise MissingPart("Orthanc is not installed (apt-get install orthanc)")
        self.folder = Path(tempfile.mkdtemp(prefix="dnh-orthanc-"))
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        config = {"Name": "dnh-test", "HttpPort": self.port,
                  "StorageDirectory": str(self.folder / "storage"),
                  "IndexDirectory": str(self.folder / "index"), "RemoteAccessAllowed": False,
                  "DicomServerEnabled": False, "AuthenticationEnabled": False, "Plugins": []}
        if dicomweb:
            if not DICOMWEB_PLUGIN.exists():
                raise MissingPart(f"Orthanc's DICOMweb plugin {DICOMWEB_PLUGIN} is missing "
                                  "(apt-get install orthanc-dicomweb)")
            config["Plugins"] = [str(DICOMWEB_PLUGIN)]
            config["DicomWeb"] = {"Enable": True, "Root": "/dicom-web/"}
        (self.folder / "orthanc.json").write_text(json.dumps(config))
        self.log = open(self.folder / "log", "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen([binary, str(self.folder / "orthanc.json")], stdout=self.log,
                                        stderr=subprocess.STDOUT)
        self.url = f"http://127.0.0.1:{self.port}"
        self.dicomweb_url = self.url + "/dicom-web"
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(self.url + "/system", timeout=2).read()
                return
            except OSError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    self.stop()
                    raise RuntimeError("Orthanc did not start") from None
                time.sleep(0.2)

    def upload(self, data: bytes) -> str:
        """POST /instances: the new instance's Orthanc id."""
        import json
        import urllib.request

        request = urllib.request.Request(self.url + "/instances", data=data, method="POST",
                                         headers={"Content-Type": "application/dicom"})
        with urllib.request.urlopen(request, timeout=30) as answer:
            return json.loads(answer.read())["ID"]

    def stop(self) -> None:
        import shutil

        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except Exception:  # noqa: BLE001 - then it is killed
            self.process.kill()
        self.log.close()
        shutil.rmtree(self.folder, ignore_errors=True)
