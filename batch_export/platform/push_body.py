"""A pushed body (which target it claims to be, hashing it on its way through), and the wait.

Shared by the receiver (``push.py``) and the pipeline (``run/delivery.py``):
its re-fetch after a conflict must hash an export exactly the way a delivery
was hashed to compare the two, and a target waits for its delivery here.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
from collections.abc import AsyncIterator
from typing import Any

import ijson

from ..input.ids import Target
from ..storage.sink import SavedExport, Sink

__all__ = ["digest_chunks", "peek_info", "save_digesting", "wait_for_push"]


def peek_info(head: bytes) -> tuple[str, str] | None:
    """``(info.type, info.id)`` from the first bytes of an export, if they hold them."""
    found: dict[str, str] = {}
    try:
        for prefix, event, value in ijson.parse(io.BytesIO(head)):
            if prefix in ("info.type", "info.id") and event in ("string", "number"):
                found[prefix[5:]] = str(value)
                if len(found) == 2:
                    return found["type"], found["id"]
    except ijson.JSONError:
        pass  # the head ends mid-document, or is not JSON at all
    return None


async def digest_chunks(chunks: AsyncIterator[bytes], digest: Any) -> AsyncIterator[bytes]:
    """Pass ``chunks`` through unchanged, feeding each to ``digest`` (a hashlib object)."""
    async for chunk in chunks:
        digest.update(chunk)
        yield chunk


async def save_digesting(
    store: Sink, target: Target, head: bytes, rest: AsyncIterator[bytes]
) -> tuple[SavedExport, str]:
    """``store.save`` that also returns the sha256 (hex) of the bytes as received.

    With ``--gzip`` the store hashes what it stores, the compressed bytes; a
    delivery is compared with what arrived.
    """
    digest = hashlib.sha256(head)
    saved = await store.save(target, head, digest_chunks(rest, digest))
    return saved, digest.hexdigest()


async def wait_for_push(
    delivered: asyncio.Future[SavedExport], grace: float, stopping: asyncio.Event
) -> SavedExport | None:
    """The pushed export, or None when ``grace`` passes (or the run stops) first."""
    stop = asyncio.ensure_future(stopping.wait())
    waiters: set[asyncio.Future[Any]] = {delivered, stop}
    try:
        await asyncio.wait(waiters, timeout=grace, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stop.cancel()
    if delivered.done() and not delivered.cancelled() and delivered.exception() is None:
        return delivered.result()
    return None
