"""aiohttp's exceptions as ours, with messages that never quote aiohttp's text.

aiohttp puts the full URL — and so, on API v1–v3, the access token — into the
text of many of its exceptions. Every message here is built from a redacted
URL instead. Only network failures are translated (aiohttp, OS and timeout
errors); anything else is a bug, and ``network_error`` returns None so the
caller re-raises it untouched: a bug must not be retried as a lost connection.
"""

from __future__ import annotations

import asyncio
import errno
import ssl
from urllib.parse import urlsplit

import aiohttp

from ..errors import ConfigError, ExportError, TransientError, UnreachableError
from ..redaction import redact_url

__all__ = ["host_of", "network_error", "unreachable_reason"]


def host_of(url: str) -> str:
    """``host`` or ``host:port`` as the user wrote it, for messages (never credentials)."""
    parts = urlsplit(url)
    host = parts.hostname or "?"
    return f"{host}:{parts.port}" if parts.port else host


def unreachable_reason(exc: BaseException) -> str | None:
    """Why no connection could be made, or None when ``exc`` is not a connect failure."""
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return "the host name does not resolve"
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return "its TLS certificate is not accepted"
    if isinstance(exc, aiohttp.ClientConnectorSSLError):
        return "the TLS handshake failed"
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return "connecting timed out"
    if isinstance(exc, aiohttp.ClientConnectorError):
        os_error = exc.os_error
        if os_error.errno == errno.ECONNREFUSED or isinstance(os_error, ConnectionRefusedError):
            return "connection refused"
        if isinstance(os_error, ssl.SSLError):
            return "the TLS handshake failed"
        return (os_error.strerror or type(os_error).__name__).lower()
    return None


def network_error(exc: BaseException, method: str, url: str) -> ExportError | None:
    """An aiohttp, OS or timeout exception as one of ours; None for anything else."""
    if isinstance(exc, ExportError):
        return exc
    where = f"{method} {redact_url(url)}"
    if isinstance(exc, aiohttp.InvalidURL):
        return ConfigError(f"invalid URL: {where}")
    reason = unreachable_reason(exc)
    if reason is not None:
        host = host_of(url)
        return UnreachableError(f"cannot reach {host}: {reason}", host=host, reason=reason)
    if isinstance(exc, (asyncio.TimeoutError, TimeoutError)):
        return TransientError(f"timed out during {where}", maybe_sent=True)
    if isinstance(exc, aiohttp.ClientPayloadError):
        return TransientError(f"the body of {where} was cut short", maybe_sent=True)
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return TransientError(
            f"the platform closed the connection during {where} with no answer", maybe_sent=True
        )
    if isinstance(exc, (aiohttp.ClientError, OSError)):
        return TransientError(
            f"connection lost during {where} ({type(exc).__name__})", maybe_sent=True
        )
    return None
