"""Start `dnh serve` on a free loopback port, send images to its API as a hospital application
would (standard library only), print the answers, and stop it.

    python examples/query_service.py --db runs/demo/hashdb runs/demo/scans/scan-000.png [...] [-k 5]

Each file goes to POST /search as the multipart field `image`; the answer is the JSON of one
query of `dnh search --json`. Then GET /items/{id} and /items/{id}/thumbnail.png for the best
match, and GET /health.
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path


def call(url: str, body: bytes | None = None, content_type: str | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(
        url, data=body, headers={"Content-Type": content_type} if content_type else {}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as error:  # a 4xx carries {"error", "hint"}
        return error.code, error.read()


def upload(url: str, path: Path) -> tuple[int, dict]:
    boundary = uuid.uuid4().hex
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="{path.name}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        + path.read_bytes()
        + (f"\r\n--{boundary}--\r\n").encode()
    )
    status, data = call(url, body, f"multipart/form-data; boundary={boundary}")
    return status, json.loads(data)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("images", type=Path, nargs="+")
    parser.add_argument("--db", type=Path, required=True)
    parser.add_argument("-k", type=int, default=5)
    args = parser.parse_args()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dnhcli",
            "serve",
            "--db",
            str(args.db),
            "--port",
            str(port),
            "--no-access-log",
        ]
    )
    try:
        for _ in range(600):  # up to a minute for the model and the database to load
            try:
                health = json.loads(call(f"{base}/health")[1])
                break
            except OSError:
                if server.poll() is not None:
                    raise SystemExit("dnh serve stopped; see its message above") from None
                time.sleep(0.1)
        else:
            raise SystemExit("dnh serve did not answer within a minute")
        print(f"{base}: {health['count']} items, {health['bits']} bits")
        for path in args.images:
            began = time.perf_counter()
            status, answer = upload(f"{base}/search?k={args.k}", path)
            ms = (time.perf_counter() - began) * 1000
            if status != 200:
                print(f"{path}: HTTP {status}: {answer['error']} (hint: {answer['hint']})")
                continue
            print(f"{answer['query']} ({ms:.1f} ms over HTTP):")
            for hit in answer["results"]:
                print(
                    f"  #{hit['rank']:<3} likeness {hit['score'] or 0:.3f} distance {hit['distance']:<3} "
                    f"id {hit['id']:<6} "
                    f"{hit['organ'] or '-'} / {hit['disease'] or '-'}  {hit['source']}"
                )
            best = answer["results"][0]["id"]
            thumbnail = call(f"{base}/items/{best}/thumbnail.png")
            print(
                f"  item {best}: {len(json.loads(call(f'{base}/items/{best}')[1]))} metadata fields, "
                f"thumbnail HTTP {thumbnail[0]} ({len(thumbnail[1])} bytes)"
            )
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
