"""Delivery of finished exports to a `report` web address.

Only loopback addresses are ever contacted: the simulator must never become a
tool for sending data to arbitrary hosts. Other web addresses are recorded
(and counted as refused); email addresses are recorded, nothing is sent.

A signed delivery (``sign_reports``, or half of them in the mixed wire)
carries ``Date``, ``Digest``, ``X-Copernica-ID`` and ``Signature`` as the
platform's outgoing requests do (``signing.py``). The Digest is of the exact
bytes sent: the export is generated deterministically, so a first pass over
its chunks (in a worker thread: it may be gigabytes) hashes it before the
POST streams it; each attempt is signed afresh, with its own Date.
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import aiohttp

from .exports import ExportSpec, export_chunks, export_length
from .signing import ReportSigner, export_sha256
from .stats import Stats

__all__ = ["deliver_export", "is_loopback_url"]

_ATTEMPTS = 4


def is_loopback_url(url: str) -> bool:
    """True for http(s) URLs whose host is 127.0.0.0/8, ::1 or localhost."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        return False
    if parts.scheme not in ("http", "https") or not host:
        return False
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


async def _body(spec: ExportSpec) -> AsyncIterator[bytes]:
    for chunk in export_chunks(spec):
        yield chunk


async def deliver_export(
    session: aiohttp.ClientSession,
    url: str,
    rid: str,
    spec: ExportSpec,
    delay: float,
    stats: Stats,
    signer: ReportSigner | None = None,
) -> None:
    """Wait until the export is ready, then POST it to `url`, retrying a few times.

    With a ``signer`` every attempt is signed (a fresh Date each time).
    """
    await asyncio.sleep(max(0.0, delay))
    body_sha256 = await asyncio.to_thread(export_sha256, spec) if signer is not None else b""
    base = {
        "Content-Type": "application/json",
        "Content-Length": str(export_length(spec)),
        "X-Datarequest-Id": rid,
    }
    for attempt in range(_ATTEMPTS):
        headers = base if signer is None else base | signer.headers(url, body_sha256)
        try:
            async with session.post(url, data=_body(spec), headers=headers) as resp:
                if resp.status < 300:
                    stats.webhooks["sent"] += 1
                    return
        except (aiohttp.ClientError, OSError, asyncio.TimeoutError):
            pass
        if attempt + 1 < _ATTEMPTS:
            await asyncio.sleep(0.2 * 2**attempt)
    stats.webhooks["failed"] += 1
