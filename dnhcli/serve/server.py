"""Running the app under uvicorn: one process, or `workers` processes sharing the socket."""

from __future__ import annotations

import json
import os
import socket
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

from dnhcli.serve.app import CONFIG_ENV, create_app
from dnhcli.serve.service import SearchService, ServeConfig


class NoDelayH11(H11Protocol):
    """uvicorn's HTTP/1.1 protocol with Nagle's algorithm off on every connection. asyncio turns
    it off only for sockets made with proto=IPPROTO_TCP, and uvicorn's listening socket for
    `--workers` is made with proto 0, so a response's two writes (head, body) met the client's
    delayed ACK: 40-48 ms per request instead of 1-3."""

    def connection_made(self, transport: Any) -> None:  # type: ignore[override]
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass
        super().connection_made(transport)


def run(config: ServeConfig, service: SearchService | None, host: str, port: int, workers: int = 1,
        access_log: bool = True) -> None:
    """Serve until interrupted: `service` in this process, or, with several `workers`, one
    service per worker process made from `config`."""
    import uvicorn

    common: dict[str, Any] = {"host": host, "port": port, "access_log": access_log, "log_level": "info",
                              "timeout_graceful_shutdown": 5, "http": NoDelayH11}
    if workers == 1:
        uvicorn.run(create_app(config, service), **common)
        return
    os.environ[CONFIG_ENV] = json.dumps(config.to_env())
    uvicorn.run("dnhcli.serve.app:app_from_environment", factory=True, workers=workers, **common)
