"""`dnh serve` under load (issue 15): latency and throughput of real image uploads over loopback
HTTP against a 1M-code database, beside the same query's in-process time.

    python bench/serve_load.py --model runs/demo/export/encoder.onnx --data runs/demo/data \
        [--items 1000000] [--threads 1,2] [--clients 1,4] [--seconds 15] [--requests 3000]

Builds (once, in --out) a database of --items 48-bit codes: the gallery of --data hashed by
the model, then random codes, each with organ/disease metadata, and the model stored in it.
For each thread count it starts `dnh serve` on a free loopback port, then for each client
count sends PNG uploads of the query split (POST /search, k=10) from that many client threads
with keep-alive connections, for at most --seconds and --requests, and reports p50/p90/p99
latency and queries per second. Every loop is bounded; only 127.0.0.1 is ever contacted.
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

from dnhcli.bench.report import cpu_name

BOUNDARY = "dnhbench0boundary"


def build_db(out: Path, model: Path, data: Path, items: int) -> Path:
    """A database of `items` codes for `model` (gallery codes first, then random), reused when
    it exists with the same size and model."""
    from dnhcli.deploy.backends import load_backend
    from dnhcli.index.codes import codes_from_continuous
    from dnhcli.index.rerank import quantize_vectors
    from dnhcli.stores.hashdb import HashDB

    backend = load_backend(model)
    if (out / "manifest.json").exists():
        with HashDB.open(out, verify=False) as db:
            if len(db) == items and db.model_fingerprint == backend.fingerprint and db.has_vectors:
                return out
    import shutil

    shutil.rmtree(out, ignore_errors=True)
    meta = json.loads((data / "manifest.json").read_text())
    organs = [c["name"] for c in meta["classes"]]
    gallery = np.load(data / "gallery_images.npy")
    labels = np.load(data / "gallery_labels.npy")
    h = backend.encode(gallery)
    real = codes_from_continuous(h)
    rng = np.random.default_rng(0)
    db = HashDB.create(
        out,
        backend.bits,
        backend.fingerprint,
        {"model": str(model)},
        model_file=model if model.suffix == ".onnx" else None,
        vectors=True,  # two-stage search, as `dnh hash` makes them
    )
    with db:
        db.add(
            real,
            [
                {
                    "source": f"gallery[{i}]",
                    "organ": organs[int(labels[i, 0])].split("_")[0],
                    "disease": organs[int(labels[i, 0])].split("_", 1)[-1],
                }
                for i in range(len(real))
            ],
            quantize_vectors(h),
        )
        step = 250_000
        for start in range(len(real), items, step):
            count = min(step, items - start)
            noise = rng.uniform(-1, 1, (count, backend.bits)).astype(np.float32)
            codes, vectors = codes_from_continuous(noise), quantize_vectors(noise)
            db.add(
                codes,
                [
                    {"source": f"synthetic/{start + i}.png", "organ": "synthetic", "disease": "none"}
                    for i in range(count)
                ],
                vectors,
            )
    return out


def uploads(data: Path, count: int = 64) -> list[bytes]:
    from PIL import Image

    bodies = []
    for i, image in enumerate(np.load(data / "query_images.npy")[:count]):
        png = io.BytesIO()
        Image.fromarray(image).save(png, "PNG")
        bodies.append(
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="image"; '
            f'filename="q{i}.png"\r\nContent-Type: image/png\r\n\r\n'.encode()
            + png.getvalue()
            + f"\r\n--{BOUNDARY}--\r\n".encode()
        )
    return bodies


def in_process(db: Path, bodies: list[bytes], threads: int) -> float:
    """Median seconds of the same work without HTTP: decode, encode, search, metadata rows."""
    from dnhcli.data.images import decode_upload
    from dnhcli.serve.service import SearchService, ServeConfig
    from dnhcli.serve.uploads import image_parts, split_parts

    service = SearchService(ServeConfig(db=db, threads=threads, reload_interval=0))
    times = []
    try:
        for round_ in range(3):
            for body in bodies:
                began = time.perf_counter()
                name, data = image_parts(
                    split_parts(body, f"multipart/form-data; boundary={BOUNDARY}"), ("image",), 1
                )[0]
                images, names = decode_upload(data, name, service.backend.input_side)
                service.search(images, names, 10)
                if round_:
                    times.append(time.perf_counter() - began)
    finally:
        service.close()
    return float(np.median(times))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(db: Path, flags: list[str]) -> tuple[subprocess.Popen, int]:
    """`dnh serve` with `flags` on a free loopback port, once it answers /health."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "dnhcli", "serve", "--db", str(db), "--port", str(port), *flags],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", "/health")
            if conn.getresponse().status == 200:
                return proc, port
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("the server did not start")


def load(
    port: int, bodies: list[bytes], clients: int, seconds: float, requests: int
) -> tuple[list[float], int, float]:
    """`clients` threads, each on its own keep-alive connection, until the time or count is up:
    (latencies in seconds, errors, elapsed seconds)."""
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    deadline = time.monotonic() + seconds
    sent = [0]
    headers = {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}

    def client(index: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        mine, i = [], index
        while time.monotonic() < deadline:
            with lock:
                if sent[0] >= requests:
                    break
                sent[0] += 1
            body = bodies[i % len(bodies)]
            i += clients
            began = time.perf_counter()
            conn.request("POST", "/search?k=10", body, headers)
            answer = conn.getresponse()
            answer.read()
            mine.append(time.perf_counter() - began)
            if answer.status != 200:
                with lock:
                    errors[0] += 1
        conn.close()
        with lock:
            latencies.extend(mine)

    began = time.perf_counter()
    workers = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return latencies, errors[0], time.perf_counter() - began


def warm(port: int, body: bytes) -> None:
    """First requests compile kernels and fault pages in: not counted."""
    for _ in range(20):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.request(
            "POST", "/search?k=10", body, {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}
        )
        conn.getresponse().read()
        conn.close()


def summary(latencies: list[float], errors: int, elapsed: float) -> dict[str, float]:
    ms = np.array(latencies) * 1000
    return {
        "requests": len(ms),
        "errors": errors,
        "seconds": round(elapsed, 2),
        "qps": round(len(ms) / elapsed, 1),
        "p50_ms": round(float(np.percentile(ms, 50)), 2),
        "p90_ms": round(float(np.percentile(ms, 90)), 2),
        "p99_ms": round(float(np.percentile(ms, 99)), 2),
    }


def _threads(server_args: str) -> int:
    words = server_args.split()
    return int(words[words.index("--threads") + 1]) if "--threads" in words else 1


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", type=Path, default=Path("runs/demo/export/encoder.onnx"))
    parser.add_argument("--data", type=Path, default=Path("runs/demo/data"))
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--out", type=Path, default=Path("runs/bench/serve-db"))
    parser.add_argument(
        "--server",
        action="append",
        dest="servers",
        help="`dnh serve` flags of one server to compare (repeat); default: --threads 1, "
        "--threads 2, and --threads 1 --no-batching",
    )
    parser.add_argument("--clients", default="1,4")
    parser.add_argument("--seconds", type=float, default=15.0, help="per server and client count")
    parser.add_argument("--requests", type=int, default=3000, help="per server and client count")
    parser.add_argument("--rounds", type=int, default=5, help="the servers take turns this many times")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    servers = args.servers or ["--threads 1", "--threads 2", "--threads 1 --no-batching"]
    db = build_db(args.out, args.model, args.data, args.items)
    bodies = uploads(args.data)
    report: dict = {"cpu": cpu_name(), "cores": os.cpu_count(), "items": args.items, "runs": []}
    print(
        f"{report['cpu']}, {report['cores']} cores; {args.items:,} codes; upload "
        f"{len(bodies[0]):,} bytes (a 28 x 28 PNG); {args.rounds} rounds, servers taking turns"
    )
    alone = {t: in_process(db, bodies, t) for t in sorted({_threads(s) for s in servers})}
    started = [start_server(db, server.split()) for server in servers]
    try:
        for _, port in started:
            warm(port, bodies[0])
        for clients in [int(c) for c in args.clients.split(",")]:
            totals: dict[str, list] = {s: [[], 0, 0.0] for s in servers}
            for _ in range(args.rounds):
                for server, (_, port) in zip(servers, started):
                    lat, err, elapsed = load(
                        port, bodies, clients, args.seconds / args.rounds, args.requests // args.rounds
                    )
                    totals[server][0] += lat
                    totals[server][1] += err
                    totals[server][2] += elapsed
            for server in servers:
                row = {
                    "server": server,
                    "clients": clients,
                    "in_process_ms": round(alone[_threads(server)] * 1000, 3),
                    **summary(*totals[server]),
                }
                report["runs"].append(row)
                print(json.dumps(row))
    finally:
        for proc, _ in started:
            proc.terminate()
            proc.wait(timeout=30)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
