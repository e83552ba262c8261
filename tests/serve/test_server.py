"""The uvicorn protocol of `dnh serve` turns Nagle's algorithm off on every connection."""

from __future__ import annotations

import socket

import pytest


def test_connections_get_tcp_nodelay(monkeypatch: pytest.MonkeyPatch) -> None:
    from uvicorn.protocols.http.h11_impl import H11Protocol

    from dnhcli.serve.server import NoDelayH11

    monkeypatch.setattr(H11Protocol, "connection_made", lambda self, transport: None)
    # a listening socket made as uvicorn makes it for --workers: proto 0, so asyncio skips it
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM, 0) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        with socket.create_connection(listener.getsockname()) as _client:
            accepted, _ = listener.accept()
            with accepted:
                assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 0

                class Transport:
                    def get_extra_info(self, name: str) -> object:
                        return accepted if name == "socket" else None

                NoDelayH11.connection_made(object.__new__(NoDelayH11), Transport())
                assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
