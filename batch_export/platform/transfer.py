"""Reading response bodies: bounded reads, chunk iterators, and the download floor.

A body is read either whole (up to a limit: error bodies, placeholders, small
exports) or chunk by chunk while it streams into a sink. Network errors met
while a body streams are turned into ours as they occur, so the consumer
never mistakes a lost connection for a disk error; and a body that crawls is
cut (``DownloadGuard``), so no answer can hold a run hostage.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import aiohttp

from ..errors import ExportError, TransientError
from .settings import ApiSettings

__all__ = ["DownloadGuard", "NetworkChunks", "NoMoreChunks", "read_bounded"]


class DownloadGuard:
    """Cuts a download that crawls, so that no answer can hold a run hostage.

    ``sock_read`` restarts on every byte, so a body that trickles (a byte every
    few seconds) never trips it. Every ``download_window`` seconds this
    checks that at least ``download_floor`` bytes per second arrived in the
    window, and that a body with a Content-Length is not past a deadline
    scaled to that length; otherwise the body's reader is failed with a
    TransientError and the call is retried. One timer per download, and the
    byte count is aiohttp's own (``StreamReader.total_bytes``): nothing per chunk.
    """

    def __init__(
        self, resp: aiohttp.ClientResponse, settings: ApiSettings, on_cut: Callable[[], None]
    ) -> None:
        self._resp = resp
        self._on_cut = on_cut
        self._floor = settings.download_floor
        self._window = settings.download_window
        loop = asyncio.get_running_loop()
        self._loop = loop
        length = resp.content_length
        self._deadline = (
            loop.time() + settings.call_timeout + length / settings.download_deadline_rate
            if length is not None
            else None
        )
        self._seen = resp.content.total_bytes
        self._timer: asyncio.TimerHandle | None = None
        # A body already read off the socket whole (most exports: it came in
        # the headers' packets) can no longer crawl: no timer for it.
        arrived = resp.content.is_eof()
        if not arrived and (self._floor > 0 or self._deadline is not None):
            self._timer = loop.call_later(self._next_wait(), self._check)

    def _next_wait(self) -> float:
        if self._deadline is None:
            return self._window
        return max(0.0, min(self._window, self._deadline - self._loop.time()))

    def _check(self) -> None:
        now = self._loop.time()
        received = self._resp.content.total_bytes
        if self._deadline is not None and now >= self._deadline:
            self._cut(f"took longer than its deadline for {self._resp.content_length} bytes")
            return
        if self._floor > 0 and received - self._seen < self._floor * self._window:
            self._cut(
                f"moved slower than {self._floor:g} bytes/s over {self._window:g}s "
                f"({received - self._seen} bytes)"
            )
            return
        self._seen = received
        self._timer = self._loop.call_later(self._next_wait(), self._check)

    def _cut(self, why: str) -> None:
        self._timer = None
        self._on_cut()
        self._resp.content.set_exception(
            TransientError(f"the download {why}: cut, to be retried", maybe_sent=True)
        )
        self._resp.close()

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


async def read_bounded(stream: aiohttp.StreamReader, limit: int) -> bytes:
    """Up to ``limit`` bytes of a body (all of it if shorter): requests and responses alike."""
    parts: list[bytes] = []
    size = 0
    while size < limit:
        chunk = await stream.read(limit - size)
        if not chunk:
            break
        parts.append(chunk)
        size += len(chunk)
    return b"".join(parts)


class NetworkChunks:
    """A response body's chunks, with aiohttp's exceptions turned into ours as they occur."""

    def __init__(
        self, chunks: AsyncIterator[bytes], translate: Callable[[Exception], BaseException]
    ) -> None:
        self._chunks = chunks
        self._translate = translate

    def __aiter__(self) -> NetworkChunks:
        return self

    async def __anext__(self) -> bytes:
        try:
            return await self._chunks.__anext__()
        except (StopAsyncIteration, ExportError):
            raise
        except Exception as exc:
            raise self._translate(exc) from None


class NoMoreChunks:
    """The rest of a body that was read whole: an async iterator over nothing."""

    def __aiter__(self) -> NoMoreChunks:
        return self

    async def __anext__(self) -> bytes:
        raise StopAsyncIteration
