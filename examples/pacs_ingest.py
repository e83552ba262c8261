"""Hash the DICOM files of a folder from a PACS, as a hospital's nightly job would: a
throwaway Orthanc on loopback receives the files, `dnh hash --source orthanc+http://...
--engine ray` hashes its instances on a Ray actor pool, a second run adds nothing, and the
codes equal those of `--engine local`.

    python examples/pacs_ingest.py --model runs/demo/export/encoder.onnx runs/demo/pacs-scans

Every step is a `dnh` command as the README gives it. Where Orthanc (or Ray) is not
installed it says so and stops with success, so the demo runs anywhere.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path


def dnh(*args: str) -> dict:
    done = subprocess.run([sys.executable, "-m", "dnhcli", *args, "--json"], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"dnh {' '.join(args)} failed: {done.stderr.strip()}")
    return json.loads(done.stdout)


def stored(db: Path) -> dict[str, bytes]:
    from dnhcli import HashDB

    with HashDB.open(db) as handle:
        ids = handle.live_ids()
        return {m["key"]: handle.codes()[i].tobytes() for i, m in zip(ids.tolist(), handle.metadata(ids))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path, help="a folder holding .dcm files")
    parser.add_argument("--model", type=Path, required=True)
    args = parser.parse_args()
    from dnhcli.bench.pacs_server import MissingPart, OrthancServer

    try:
        import ray.data  # noqa: F401
    except ImportError:
        print("skipped: Ray is not installed (pip install 'dnhcli[ray]')")
        return
    try:
        server = OrthancServer()
    except MissingPart as exc:
        print(f"skipped: {exc}")
        return
    try:
        files = sorted(args.folder.glob("*.dcm"))
        for path in files:
            server.upload(path.read_bytes())
        print(f"Orthanc on {server.url} holds {len(files)} instances")
        source = "orthanc+" + server.url
        with tempfile.TemporaryDirectory(prefix="dnh-pacs-demo-") as scratch:
            work = Path(scratch)
            nightly = ("--checkpoint", str(work / "nightly.json"))
            common = ("--model", str(args.model), "--source", source)
            first = dnh("hash", *common, "--db", str(work / "ray"), "--engine", "ray", *nightly)
            print(f"--engine ray: added {first['added']}, failed {first['failed']}")
            again = dnh("hash", *common, "--db", str(work / "ray"), "--engine", "ray", *nightly)
            print(f"the next night: added {again['added']}")
            local = dnh("hash", *common, "--db", str(work / "local"))
            same = stored(work / "ray") == stored(work / "local")
            print(f"--engine local: added {local['added']}; the same codes and keys: {same}")
            if not (same and first["added"] == len(files) and again["added"] == 0 and not first["failed"]):
                raise SystemExit("the PACS ingest did not hash every instance once, alike")
            found = dnh("search", str(files[0]), "--db", str(work / "ray"), "-k", "3")
            hits = found["queries"][0]["results"]
            print(f"{files[0].name}: " + ", ".join(f"{h['source']} (d={h['distance']})" for h in hits))
    finally:
        server.stop()


if __name__ == "__main__":
    main()
