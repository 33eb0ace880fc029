"""What the app's handlers share: the state key, the error shape and dropped connections.

The platform's ``{"error": {"message": ...}}`` answer, the load balancer's
overload page, the ways a connection is dropped instead of answered (a reset,
an orderly close, no reply at all) and the two patterns a target ID or an
email address is checked with.
"""

from __future__ import annotations

import contextlib
import re
import socket
import struct
from collections.abc import Awaitable, Callable

from aiohttp import web

from .state import SimState

__all__ = [
    "EMAIL_ADDRESS",
    "LOADBALANCER_HEADER",
    "LOADBALANCER_HTML",
    "NUMERIC_ID",
    "STATE",
    "Aborted",
    "Handler",
    "abort",
    "aborted_response",
    "empty_reply",
    "error",
]

STATE = web.AppKey("sim_state", SimState)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# What the platform's load balancer answers under overload (rmuit/copernica-api README).
LOADBALANCER_HTML = (
    "<html><head><title>Loadbalancer Error</title></head><body><h1>Loadbalancer Error</h1>"
    "<p>There are too many requests to handle, please slow down.</p></body></html>\n"
)
LOADBALANCER_HEADER = {"X-Loadbalancer": "too many requests to handle"}
NUMERIC_ID = re.compile(r"^[0-9]{1,18}$")
EMAIL_ADDRESS = re.compile(r"^[^@\s/]+@[^@\s/]+\.[^@\s/.]+$")


def error(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    """The platform's error shape: ``{"error": {"message": ...}}``."""
    return web.json_response({"error": {"message": message}}, status=status, headers=headers)


def abort(request: web.Request, *, reset: bool) -> None:
    """Drop the connection: RST (reset) or an orderly close after flushing (truncate)."""
    transport = request.transport
    if transport is None:
        return
    if not reset:
        transport.close()
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


class Aborted(web.Response):
    """Returned after dropping the connection: aiohttp's attempt to send it fails quietly.

    The middleware logs its status as 0 (no answer reached the client).
    """


def aborted_response() -> web.Response:
    """What a handler returns once it has dropped the connection."""
    return Aborted(status=500)


def empty_reply(request: web.Request) -> web.Response:
    """Close the connection before anything is written: not even a status line."""
    transport = request.transport
    if transport is not None:
        transport.close()
    return aborted_response()
