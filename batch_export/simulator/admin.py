"""The admin routes under ``/_sim/``: counters, the request log, outages, checksums, the DKIM key.

They are for tests and benchmarks, not part of the simulated API, so the API
middleware lets them through without counting, rate limiting or auth.
"""

from __future__ import annotations

import asyncio
import hashlib
import math

from aiohttp import web

from .exports import ExportSpec, export_chunks, export_length
from .replies import STATE, error

__all__ = [
    "admin_datarequest",
    "admin_dkim",
    "admin_log",
    "admin_outage",
    "admin_overload",
    "admin_reset_stats",
    "admin_stats",
]


async def admin_stats(request: web.Request) -> web.StreamResponse:
    """GET /_sim/stats: all counters."""
    return web.json_response(request.app[STATE].stats.snapshot())


async def admin_log(request: web.Request) -> web.StreamResponse:
    """GET /_sim/log: [t, method, endpoint, status] per request (most recent 200,000)."""
    return web.json_response([list(entry) for entry in request.app[STATE].stats.log])


async def admin_dkim(request: web.Request) -> web.StreamResponse:
    """GET /_sim/dkim: ``{name: TXT}``, the DKIM record(s) of the key signed reports use."""
    return web.json_response(request.app[STATE].signer.dkim_records())


async def admin_reset_stats(request: web.Request) -> web.StreamResponse:
    """POST /_sim/reset-stats: zero the counters (data requests are kept)."""
    request.app[STATE].stats.reset()
    return web.json_response({"ok": True})


def _episode_seconds(request: web.Request) -> float | web.Response:
    """The ``seconds`` query of an outage or overload episode, or the 400 that refuses it."""
    raw = request.query.get("seconds", "")
    try:
        seconds = float(raw)
    except ValueError:
        seconds = math.nan
    if not (math.isfinite(seconds) and 0 < seconds <= 3600):
        return error(400, f"seconds: accepted: a number of seconds, 0 < S <= 3600; got {raw!r}")
    return seconds


async def admin_overload(request: web.Request) -> web.StreamResponse:
    """POST /_sim/overload?seconds=S: refuse every API call as overload (503) for S seconds.

    The field's "Loadbalancer Error" episodes: the platform refuses whatever
    the pace, for minutes, then takes requests again."""
    state = request.app[STATE]
    seconds = _episode_seconds(request)
    if isinstance(seconds, web.Response):
        return seconds
    state.overloaded_until = state.now() + seconds
    return web.json_response({"ok": True, "seconds": seconds})


async def admin_outage(request: web.Request) -> web.StreamResponse:
    """POST /_sim/outage?seconds=S: answer, then refuse connections for S seconds."""
    state = request.app[STATE]
    seconds = _episode_seconds(request)
    if isinstance(seconds, web.Response):
        return seconds
    hook = state.outage_hook
    if hook is None:
        return error(501, "outages need the Simulator server (batch_export.simulator.Simulator)")
    response = web.json_response({"ok": True, "seconds": seconds})
    response.force_close()  # this connection closes after the answer; all others are cut
    await response.prepare(request)
    await response.write_eof()
    task = asyncio.create_task(hook(seconds, request.transport))
    state.tasks.add(task)
    task.add_done_callback(state.tasks.discard)
    return response


def _sha256_of(spec: ExportSpec) -> str:
    digest = hashlib.sha256()
    for chunk in export_chunks(spec):
        digest.update(chunk)
    return digest.hexdigest()


async def admin_datarequest(request: web.Request) -> web.StreamResponse:
    """GET /_sim/datarequest/{rid}: what the export is and its sha256."""
    state = request.app[STATE]
    rid = request.match_info["rid"]
    req = state.requests.get(rid)
    if req is None:
        return error(404, f"Unknown data request {rid}")
    spec = state.spec_for(req)
    key = (spec.kind, spec.target_id, spec.size, spec.behaviour)
    sha = state.sha_cache.get(key)
    if sha is None:
        sha = await asyncio.to_thread(_sha256_of, spec)
        if len(state.sha_cache) < 10_000:
            state.sha_cache[key] = sha
    phase = state.phase(req, state.now())
    target_id: object = req.target
    if req.kind != "email" and not state.config.id_as_string:
        target_id = int(req.target)
    return web.json_response(
        {
            "rid": rid,
            "kind": req.kind,
            "id": target_id,
            "size": export_length(spec),
            "sha256": sha,
            "ready": phase == "ready",
            "expired": phase == "expired",
        }
    )
