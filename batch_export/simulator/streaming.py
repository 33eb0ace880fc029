"""The bodies of a ready export's GET: the export itself, junk and a trickle.

The genuine export is streamed in chunks (cut short for the reset/truncate
faults and the short-body behaviour, stalled halfway for the stall fault); a
junk-* answer is a 200 that is not the export; a trickle target's body comes
one byte every ``trickle_seconds``.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from .exports import ExportSpec, export_chunks, export_length
from .replies import abort, aborted_response
from .state import SimState

__all__ = ["serve_junk", "stream_export", "trickle"]

# A page a proxy or captive portal might answer 200 with (the junk-html behaviour).
_JUNK_HTML = (
    "<!DOCTYPE html>\n<html><head><title>Please wait</title></head><body>"
    "<h1>Checking your connection</h1><p>This page will reload automatically.</p>"
    "</body></html>\n"
)
_JUNK_ERROR = {"error": {"message": "Internal error, please try again later"}}
_YIELD_EVERY = 8  # chunks streamed between explicit yields to the event loop


async def stream_export(
    request: web.Request, state: SimState, spec: ExportSpec, fault: str | None
) -> web.StreamResponse:
    """Stream the export; cut it short for reset/truncate faults and short-body."""
    stats = state.stats
    length = export_length(spec)
    cut: int | None = None
    if fault in ("reset", "truncate") or spec.behaviour == "short-body":
        cut = max(0, min(length - 1, length // 2))
    # "stall": the body stops halfway for --slow-seconds, then goes on.
    stall_at = length // 2 if fault == "stall" else None
    response = web.StreamResponse(status=200)
    response.content_type = "application/json"
    response.content_length = length
    await response.prepare(request)
    sent = 0
    try:
        for index, chunk in enumerate(export_chunks(spec)):
            if cut is not None and sent + len(chunk) >= cut:
                piece = chunk[: cut - sent]
                if piece:
                    await response.write(piece)
                    sent += len(piece)
                abort(request, reset=fault == "reset")
                return aborted_response()
            if stall_at is not None and sent + len(chunk) > stall_at:
                before, chunk = chunk[: stall_at - sent], chunk[stall_at - sent :]
                await response.write(before)
                sent += len(before)
                stall_at = None
                await asyncio.sleep(state.config.slow_seconds)
            await response.write(chunk)
            sent += len(chunk)
            if index % _YIELD_EVERY == _YIELD_EVERY - 1:
                await asyncio.sleep(0)  # let other requests run during a big export
        await response.write_eof()
    except ConnectionError:  # the client went away mid-body
        return aborted_response()
    finally:
        stats.bytes_served += sent
    stats.exports_served += 1
    return response


async def serve_junk(
    request: web.Request, state: SimState, spec: ExportSpec, kind: str
) -> web.StreamResponse:
    """A 200 that is not the export: what a proxy or a half-broken backend answers."""
    if kind == "junk-html":
        return web.Response(text=_JUNK_HTML, content_type="text/html")
    if kind == "junk-empty":
        return web.Response(body=b"", content_type="application/json")
    if kind == "junk-error":
        return web.json_response(_JUNK_ERROR)
    if kind == "junk-array":
        return web.json_response([])
    # junk-truncated: the first half of the genuine export, with a matching Content-Length
    # (a complete HTTP answer whose body is cut JSON, not a transport error).
    cut = max(1, export_length(spec) // 2)
    response = web.StreamResponse(status=200)
    response.content_type = "application/json"
    response.content_length = cut
    await response.prepare(request)
    sent = 0
    try:
        for chunk in export_chunks(spec):
            piece = chunk[: cut - sent]
            await response.write(piece)
            sent += len(piece)
            if sent >= cut:
                break
        await response.write_eof()
    except ConnectionError:
        return aborted_response()
    finally:
        state.stats.bytes_served += sent
    return response


async def trickle(request: web.Request, state: SimState, spec: ExportSpec) -> web.StreamResponse:
    """The export's headers at once, then its body one byte every `trickle_seconds`.

    Data keeps arriving, so a read (sock_read) timeout never fires; only a
    limit on the whole download ends it.
    """
    state.stats.trickles += 1
    response = web.StreamResponse(status=200)
    response.content_type = "application/json"
    response.content_length = export_length(spec)
    await response.prepare(request)
    sent = 0
    try:
        for chunk in export_chunks(spec):
            for index in range(len(chunk)):
                if sent:
                    await asyncio.sleep(state.config.trickle_seconds)
                await response.write(chunk[index : index + 1])
                sent += 1
        await response.write_eof()
    except ConnectionError:  # the client gave up
        return aborted_response()
    finally:
        state.stats.bytes_served += sent
    state.stats.exports_served += 1
    return response
