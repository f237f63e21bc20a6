"""uvicorn's HTTP/1.1 protocol with Nagle's algorithm off on every connection.

With ``--workers N`` uvicorn binds the listening socket itself with ``proto`` 0; the
sockets it accepts inherit that, and asyncio turns ``TCP_NODELAY`` on only for sockets
that say ``IPPROTO_TCP`` (uvicorn issue 3149). Nagle's algorithm then holds each
response's body until the client acknowledges its headers, and clients delay that
acknowledgement: every request after the first on a kept-alive connection waited ~40 ms
(measured: 44 ms p50 with 2 workers against 3 ms with one). This protocol sets the
option itself when a connection is made, whatever the listener.
"""

from __future__ import annotations

import asyncio
import socket
from contextlib import suppress

from uvicorn.protocols.http.h11_impl import H11Protocol

IMPORT_PATH = "auterity.api.nodelay:NoDelayH11Protocol"
"""What ``uvicorn.run(http=...)`` imports in each worker."""


def set_nodelay(transport: asyncio.BaseTransport) -> bool:
    """Turn Nagle's algorithm off on a transport's TCP socket; False if it has none."""
    sock = transport.get_extra_info("socket")
    if sock is None or sock.family not in (socket.AF_INET, socket.AF_INET6):
        return False
    with suppress(OSError):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return True
    return False


class NoDelayH11Protocol(H11Protocol):
    """:class:`H11Protocol` that sends each write at once (``TCP_NODELAY``)."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        set_nodelay(transport)
        super().connection_made(transport)
