"""Delivery of finished exports to a `report` web address.

Only loopback addresses are ever contacted: the simulator must never become a
tool for sending data to arbitrary hosts. Other web addresses are recorded
(and counted as refused); email addresses are recorded, nothing is sent.
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import aiohttp

from .exports import ExportSpec, export_chunks, export_length
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
) -> None:
    """Wait until the export is ready, then POST it to `url`, retrying a few times."""
    await asyncio.sleep(max(0.0, delay))
    headers = {
        "Content-Type": "application/json",
        "Content-Length": str(export_length(spec)),
        "X-Datarequest-Id": rid,
    }
    for attempt in range(_ATTEMPTS):
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
