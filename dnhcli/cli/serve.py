"""`dnh serve`: the same search as `dnh search`, as an HTTP service with a web page."""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from typing import Annotated, Optional

import typer

from dnhcli.cli.shared import DbOpt, handle_errors, info
from dnhcli.errors import InputError


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@handle_errors
def serve_command(
    db: DbOpt,
    model: Annotated[Optional[Path], typer.Option(
        "--model", "-m", help="The model (encoder.xml, encoder.onnx or best.pt); by default the "
                              "encoder the database stores.", dir_okay=False)] = None,
    host: Annotated[str, typer.Option(
        help="Address to listen on. Loopback by default: anything else is reachable from the "
             "network, so name it explicitly (e.g. 0.0.0.0) only behind your firewall.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.", min=1, max=65535)] = 8000,
    workers: Annotated[int, typer.Option(
        help="Server processes, each with its own copy of the model (the database is shared "
             "through the page cache).", min=1, max=64)] = 1,
    threads: Annotated[int, typer.Option(
        help="Search and inference threads per worker. 1 leaves the other cores to concurrent "
             "requests (on 2 cores the most queries per second); more cut one query's latency "
             "on a large database with idle cores.", min=1)] = 1,
    max_upload_mb: Annotated[float, typer.Option(
        help="Largest request body in MB; larger ones get 413.", min=0.01, max=1024)] = 8.0,
    max_k: Annotated[int, typer.Option(help="Largest k a request may ask for.", min=1)] = 1000,
    max_images: Annotated[int, typer.Option(
        help="Most query images in one POST /search/batch request.", min=1, max=4096)] = 64,
    reload_interval: Annotated[float, typer.Option(
        help="Seconds between looks for appends by other processes (0: only POST /reload).",
        min=0)] = 1.0,
    batching: Annotated[bool, typer.Option(
        help="Rank the queries that arrive together in one pass.")] = True,
    access_log: Annotated[bool, typer.Option(help="Log every request.")] = True,
) -> None:
    """Serve search over HTTP: POST /search, /search/batch, GET /items/{id}, /health and a web
    page at /. The model and the database are loaded once; appends by other processes are
    picked up without dropping requests."""
    # idle OpenMP threads of the search kernels sleep instead of spinning, leaving the cores to
    # the other requests (4 clients on 2 cores: 377 q/s against 327 with one worker, 448
    # against 162 with two); set before the kernels load the OpenMP runtime
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from dnhcli.serve.server import run
    from dnhcli.serve.service import SearchService, ServeConfig
    from dnhcli.stores import store_exists
    from dnhcli.stores.locate import location, shown

    where = location(db)
    if not store_exists(where):
        raise InputError(f"hash database not found: {shown(where)}", hint="build one with `dnh hash`")
    config = ServeConfig(db=where, model=model, threads=threads, max_upload=int(max_upload_mb * 2**20),
                         max_k=max_k, max_images=max_images, reload_interval=reload_interval,
                         batching=batching)
    service = SearchService(config)  # a bad model or database fails here, in one line
    health = service.health()
    if not _loopback(host):
        info(f"listening on {host}: reachable from the network, not only from this machine")
    info(f"dnh serve: {health['count']:,} items, {health['bits']} bits, "
         f"{service.backend.name} encoder; open http://{host}:{port}/")
    if workers > 1:
        service.close()  # each worker process loads its own
    try:
        run(config, service if workers == 1 else None, host, port, workers, access_log)
    finally:
        service.close()
