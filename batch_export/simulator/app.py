"""The aiohttp.web application: routes, the auth/rate-limit middleware, handlers.

Request flow for the API (``/v{N}/...`` and ``/authenticate``): count it,
answer 301 when redirecting, take a rate-limit token for the caller's
account (a refusal is played in the configured or drawn throttle style),
check credentials, then the handler (which may inject a fault, a wire variant
or a hostile behaviour). The admin routes under ``/_sim/`` skip all of that.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import math
import re
import socket
import struct
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timezone
from email.utils import format_datetime
from typing import Any

import aiohttp
from aiohttp import web

from .auth import account_of
from .config import SimulatorConfig
from .exports import ExportSpec, export_chunks, export_length
from .ratelimit import TokenBuckets
from .state import DataRequest, SimState
from .webhooks import deliver_export, is_loopback_url

__all__ = ["LOADBALANCER_HTML", "STATE", "build_app"]

STATE = web.AppKey("sim_state", SimState)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# What the platform's load balancer answers under overload (rmuit/copernica-api README).
LOADBALANCER_HTML = (
    "<html><head><title>Loadbalancer Error</title></head><body><h1>Loadbalancer Error</h1>"
    "<p>There are too many requests to handle, please slow down.</p></body></html>\n"
)
LOADBALANCER_HEADER = {"X-Loadbalancer": "too many requests to handle"}
# A page a proxy or captive portal might answer 200 with (the junk-html behaviour).
_JUNK_HTML = (
    "<!DOCTYPE html>\n<html><head><title>Please wait</title></head><body>"
    "<h1>Checking your connection</h1><p>This page will reload automatically.</p>"
    "</body></html>\n"
)
_JUNK_ERROR = {"error": {"message": "Internal error, please try again later"}}
_ROUTE_ENDPOINTS = {
    "post-datarequest": "POST datarequest",
    "get-datarequest": "GET datarequest",
    "get-status": "GET status",
    "get-data": "GET data",
    "post-authenticate": "POST authenticate",
    "get-profileids": "GET profileids",
    "get-subprofileids": "GET subprofileids",
}
_NUMERIC = re.compile(r"^[0-9]{1,18}$")
_EMAIL = re.compile(r"^[^@\s/]+@[^@\s/]+\.[^@\s/.]+$")
_YIELD_EVERY = 8  # chunks streamed between explicit yields to the event loop


def error(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    """The platform's error shape: ``{"error": {"message": ...}}``."""
    return web.json_response({"error": {"message": message}}, status=status, headers=headers)


def _abort(request: web.Request, *, reset: bool) -> None:
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


class _Aborted(web.Response):
    """Returned after dropping the connection: aiohttp's attempt to send it fails quietly.

    The middleware logs its status as 0 (no answer reached the client).
    """


def _aborted_response() -> web.Response:
    return _Aborted(status=500)


def _empty_reply(request: web.Request) -> web.Response:
    """Close the connection before anything is written: not even a status line."""
    transport = request.transport
    if transport is not None:
        transport.close()
    return _aborted_response()


# --------------------------------------------------------------------------- middleware


def _throttled(state: SimState, wait: float) -> web.Response:
    """A refusal to serve this call now, in the configured (or drawn) throttle style."""
    style = state.wire.throttle_style()
    if style in ("503-html", "504-html"):
        return web.Response(
            status=int(style[:3]),
            text=LOADBALANCER_HTML,
            content_type="text/html",
            headers=LOADBALANCER_HEADER,
        )
    message = "Too many requests: rate limit exceeded"
    if style == "429-bare":
        return error(429, message)
    seconds = TokenBuckets.retry_after_seconds(wait)
    if style == "429-date":
        at = datetime.fromtimestamp(int(time.time()) + seconds + 1, tz=timezone.utc)
        retry_after = format_datetime(at, usegmt=True)
    else:
        retry_after = str(seconds)
    return error(429, message, {"Retry-After": retry_after})


async def _authenticate(request: web.Request, state: SimState) -> tuple[str, web.Response | None]:
    """(rate-limit key, 401 response or None) for an API request."""
    cfg = state.config
    if request.path == "/authenticate":
        form = await request.post()
        token = form.get("access_token")
        if not isinstance(token, str) or not token:
            return "anonymous", error(401, "Missing access_token")
        if token != cfg.token:
            return account_of(token), error(401, "Invalid access token")
        return state.account, None
    version = int(request.match_info.get("version", "2"))
    if version >= 4:
        header = request.headers.get("Authorization", "")
        if not header.startswith("Bearer "):
            return "anonymous", error(401, "Missing bearer token (Authorization: Bearer JWT)")
        subject = state.jwt.verify(header[7:].strip())
        if subject is None:
            return "anonymous", error(401, "Invalid or expired JWT")
        return subject, None
    token = request.query.get("access_token")
    if not token:
        return "anonymous", error(401, "Missing access_token parameter")
    if token != cfg.token:
        return account_of(token), error(401, "Invalid access token")
    return state.account, None


@web.middleware
async def api_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Counting, redirects, rate limiting and auth for every API request."""
    state = request.app[STATE]
    path = request.path
    if path.startswith("/_sim/"):
        return await handler(request)
    stats = state.stats
    route = request.match_info.route.name
    endpoint = _ROUTE_ENDPOINTS.get(route or "", "other")
    if endpoint != "other":
        stats.requests[endpoint] += 1
    if "access_token" in request.query or "Authorization" in request.headers:
        stats.credentials_received += 1
    status = 0
    try:
        response = await _guarded(request, handler, state)
        status = 0 if isinstance(response, _Aborted) else response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        stats.record(state.now() - state.started_at, request.method, endpoint, status)


async def _guarded(request: web.Request, handler: Handler, state: SimState) -> web.StreamResponse:
    cfg = state.config
    is_api = request.path.startswith("/v")
    if cfg.redirect_to is not None and is_api:
        location = cfg.redirect_to.rstrip("/") + request.raw_path
        return web.Response(status=301, headers={"Location": location})
    if request.match_info.route.name is None:
        return error(404, "Unknown call")
    key, failure = await _authenticate(request, state)
    if state.buckets is not None:
        wait = state.buckets.take(key, state.now())
        if wait > 0:
            return _throttled(state, wait)
    elif state.wire.overloaded():
        return _throttled(state, 1.0)
    if failure is not None:
        return failure
    return await handler(request)


# ------------------------------------------------------------------------------ handlers


async def post_authenticate(request: web.Request) -> web.StreamResponse:
    """Exchange the access token (already checked) for a JWT, unless a blip is played."""
    state = request.app[STATE]
    blip = state.wire.auth_fault()
    if blip == "503":
        return error(503, "Service temporarily unavailable")
    if blip == "429":
        return error(429, "Too many requests", {"Retry-After": "1"})
    if blip == "reset":
        _abort(request, reset=True)
        return _aborted_response()
    if blip in ("slow", "timeout"):
        await asyncio.sleep(state.config.slow_seconds)
        if blip == "timeout":
            return _empty_reply(request)
    state.wire.auth_succeeded()
    return web.Response(text=state.jwt.issue(state.account), content_type="text/plain")


async def _report_param(request: web.Request) -> tuple[str | None, web.Response | None]:
    """The optional `report` parameter from the query, a JSON body or a form body."""
    value: object = request.query.get("report")
    if value is None and request.can_read_body:
        if request.content_type == "application/json":
            try:
                body = await request.json()
            except ValueError:
                return None, error(400, "Request body is not valid JSON")
            if isinstance(body, dict):
                value = body.get("report")
        elif request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
            value = (await request.post()).get("report")
        else:
            await request.read()
    if value is None or value == "":
        return None, None
    if not isinstance(value, str):
        return None, error(400, "report must be an email address or a web address")
    return value, None


def _record_report(state: SimState, report: str, rid: str, req: DataRequest) -> web.Response | None:
    if report.startswith(("http://", "https://")):
        state.stats.report_urls += 1
        if not is_loopback_url(report):
            state.stats.webhooks["refused"] += 1
            return None
        session = state.session
        if session is None:
            return None
        task = asyncio.ensure_future(
            deliver_export(
                session, report, rid, state.spec_for(req), req.ready_at - state.now(), state.stats
            )
        )
        state.tasks.add(task)
        task.add_done_callback(state.tasks.discard)
        return None
    if _EMAIL.match(report):
        state.stats.report_emails.append(report)
        return None
    return error(400, "report must be an email address or a web address")


async def post_datarequest(request: web.Request) -> web.StreamResponse:
    """Start a data request for a profile, subprofile or email address."""
    state = request.app[STATE]
    kind = request.match_info["kind"]
    target = request.match_info["target"]
    version = int(request.match_info["version"])
    key = f"{kind}:{target}"
    state.stats.posts_per_target[key] += 1
    fault = state.draw_fault()
    refusal = await _play_fault_before_post(state, fault)
    if refusal is not None:
        return refusal
    refusal = _refuse_invalid_target(state.config, kind, target)
    if refusal is not None:
        return refusal
    behaviour = state.behaviour(target)
    refusal = _hostile_post_refusal(behaviour)
    if refusal is not None:
        return refusal
    report, failure = await _report_param(request)
    if failure is not None:
        return failure
    if behaviour == "no-request-id":
        return web.Response(status=state.config.post_status)
    rid, req = state.create(kind, target, key)
    if report is not None:
        failure = _record_report(state, report, rid, req)
        if failure is not None:
            return failure
    return _answer_created_post(request, state, fault, version, rid)


async def _play_fault_before_post(state: SimState, fault: str | None) -> web.Response | None:
    """A 500/503 fault refuses the POST outright; a slow one sleeps first and goes on."""
    if fault in ("500", "503"):
        return error(int(fault or 0), "Internal error, please try again later")
    if fault == "slow":
        await asyncio.sleep(state.config.slow_seconds)
    return None


def _refuse_invalid_target(cfg: SimulatorConfig, kind: str, target: str) -> web.Response | None:
    """The 400/404 for a malformed email address or ID, or a missing profile."""
    if kind == "email":
        if not _EMAIL.match(target):
            return error(400, f"Invalid email address: {target!r}")
    elif not _NUMERIC.match(target):
        return error(400, f"Invalid {kind} ID: must be numeric")
    elif target in cfg.missing_ids:
        return error(404, f"{kind.capitalize()} {target} does not exist")
    return None


def _hostile_post_refusal(behaviour: str | None) -> web.Response | None:
    """The error answer a hostile target's behaviour plays instead of creating a request."""
    if behaviour == "html-error":
        return web.Response(
            status=500,
            text="<html><body><h1>500 Internal Server Error</h1><hr>nginx</body></html>\n",
            content_type="text/html",
        )
    if behaviour == "huge-error":
        return error(400, "Invalid request: " + "x" * 5_000_000)
    if behaviour == "bad-request":
        return error(400, "Invalid profile")
    return None


def _answer_created_post(
    request: web.Request, state: SimState, fault: str | None, version: int, rid: str
) -> web.Response:
    """The created request's answer, unless a reset/truncate or empty fault swallows it."""
    if fault in ("reset", "truncate"):
        _abort(request, reset=True)
        return _aborted_response()
    if fault == "empty":  # created, but the answer never comes: an ambiguous POST
        return _empty_reply(request)
    return _created(state, version, rid)


def _created(state: SimState, version: int, rid: str) -> web.Response:
    """The successful POST's answer, with the request ID where the wire puts it."""
    status, place = state.wire.post_answer()
    url = f"{state.base_url}/v{version}/datarequest/{rid}"
    if place == "x-created":
        return web.Response(status=status, headers={"X-Created": rid, "X-location": url})
    if place == "x-location":
        return web.Response(status=status, headers={"X-location": url})
    if place == "location":
        return web.Response(status=status, headers={"Location": url})
    if place == "json-body":
        ident: object = int(rid) if rid.isdigit() else rid
        return web.json_response({"id": ident}, status=status)
    return web.Response(status=status, text=rid, content_type="text/plain")


async def _get_common(
    request: web.Request,
) -> tuple[SimState, str | None, DataRequest | None, str, web.StreamResponse | None]:
    """Fault injection and lookup shared by the three datarequest GETs."""
    state = request.app[STATE]
    fault = state.draw_fault()
    if fault in ("500", "503"):
        return (
            state,
            fault,
            None,
            "",
            error(int(fault or 0), "Internal error, please try again later"),
        )
    if fault == "empty":
        return state, fault, None, "", _empty_reply(request)
    if fault == "slow":
        await asyncio.sleep(state.config.slow_seconds)
    req = state.requests.get(request.match_info["rid"])
    phase = "unknown" if req is None else state.phase(req, state.now())
    if phase == "expired":
        state.stats.expired_seen += 1
    return state, fault, req, phase, None


def _placeholder(state: SimState, req: DataRequest, version: int) -> web.Response:
    """The not-ready answer: ``{"data": TEXT}``, or with the export's ``info`` beside it."""
    with_info, wording = state.wire.placeholder(version)
    body: dict[str, object] = {"data": wording}
    if with_info:
        target_id: object = req.target
        if req.kind != "email" and not state.config.id_as_string:
            target_id = int(req.target)
        body = {"info": {"type": req.kind, "id": target_id}, "data": wording}
    return web.json_response(body)


async def get_datarequest(request: web.Request) -> web.StreamResponse:
    """The export when ready, the placeholder JSON while pending, 404 when gone."""
    return await _get_export(request, placeholder_while_pending=True)


async def get_data(request: web.Request) -> web.StreamResponse:
    """The export when ready; 404 while pending and when gone."""
    return await _get_export(request, placeholder_while_pending=False)


async def _get_export(
    request: web.Request, *, placeholder_while_pending: bool
) -> web.StreamResponse:
    state, fault, req, phase, early = await _get_common(request)
    if early is not None:
        return early
    version = int(request.match_info["version"])
    if req is None or phase == "expired":
        response: web.StreamResponse = error(404, "Data request does not exist or has expired")
    elif phase == "pending":
        if placeholder_while_pending:
            response = _placeholder(state, req, version)
        else:
            response = error(404, "Data not available (yet)")
    elif state.behaviour(req.target) == "placeholder-ready":
        response = _placeholder(state, req, version)
    else:
        junk = state.junk_for(req) or state.wire.transient_junk(request.match_info["rid"])
        if junk is not None:
            state.stats.junk[junk] += 1
            state.stats.wire[junk] += 1
            return await _junk(request, state, state.spec_for(req), junk)
        if state.behaviour(req.target) == "trickle":
            return await _trickle(request, state, state.spec_for(req))
        return await _stream_export(request, state, state.spec_for(req), fault)
    if fault in ("reset", "truncate"):
        _abort(request, reset=True)
        return _aborted_response()
    return response


async def _stream_export(
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
                _abort(request, reset=fault == "reset")
                return _aborted_response()
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
        return _aborted_response()
    finally:
        stats.bytes_served += sent
    stats.exports_served += 1
    return response


async def _junk(
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
        return _aborted_response()
    finally:
        state.stats.bytes_served += sent
    return response


async def _trickle(request: web.Request, state: SimState, spec: ExportSpec) -> web.StreamResponse:
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
        return _aborted_response()
    finally:
        state.stats.bytes_served += sent
    state.stats.exports_served += 1
    return response


async def get_status(request: web.Request) -> web.StreamResponse:
    """pending (with a growing byte count), available, or not available."""
    state, fault, req, phase, early = await _get_common(request)
    if early is not None:
        return early
    if fault in ("reset", "truncate"):
        _abort(request, reset=True)
        return _aborted_response()
    if req is None or phase == "expired":
        return web.json_response({"status": "not available"})
    length = export_length(state.spec_for(req))
    if phase == "pending":
        span = req.ready_at - req.created_at
        fraction = (state.now() - req.created_at) / span if span > 0 else 1.0
        available = min(length - 1, int(length * fraction))
        return web.json_response({"status": "pending", "available": max(0, available)})
    return web.json_response(
        {"status": "available", "available": length, "content-type": "application/json"}
    )


# ------------------------------------------------------------------------------ listings


def _ids(owner: str, count: int, start: int, stop: int) -> list[int]:
    """Ascending IDs from a base derived from the owner's ID (deterministic)."""
    base = int(owner) * 100_000 + 1 if _NUMERIC.match(owner) else 1
    return list(range(base + start, base + min(stop, count)))


def _int_param(request: web.Request, name: str, default: int) -> int | None:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    return int(raw) if re.fullmatch(r"[0-9]{1,12}", raw) else None


async def get_profileids(request: web.Request) -> web.StreamResponse:
    """Paged profile IDs of a database (limit default 100, at most 1000)."""
    state = request.app[STATE]
    dbid = request.match_info["dbid"]
    count = state.config.databases.get(dbid)
    if count is None:
        return error(404, f"Database {dbid} does not exist")
    start = _int_param(request, "start", 0)
    limit = _int_param(request, "limit", 100)
    if start is None:
        return error(400, "start must be a whole number >= 0")
    if limit is None or limit > 1000:
        return error(400, "limit must be a whole number between 0 and 1000")
    ids = _ids(dbid, count, start, start + limit)
    if not state.config.wrap_id_lists:
        return web.json_response(ids)
    body: dict[str, Any] = {"start": start, "limit": limit, "count": len(ids)}
    if request.query.get("total", "").lower() not in ("false", "0", "no"):
        body["total"] = count
    body["data"] = ids
    return web.json_response(body)


async def get_subprofileids(request: web.Request) -> web.StreamResponse:
    """All subprofile IDs of a collection, unpaged (as documented)."""
    state = request.app[STATE]
    cid = request.match_info["cid"]
    count = state.config.collections.get(cid)
    if count is None:
        return error(404, f"Collection {cid} does not exist")
    return web.json_response(_ids(cid, count, 0, count))


# --------------------------------------------------------------------------------- admin


async def admin_stats(request: web.Request) -> web.StreamResponse:
    """GET /_sim/stats: all counters."""
    return web.json_response(request.app[STATE].stats.snapshot())


async def admin_log(request: web.Request) -> web.StreamResponse:
    """GET /_sim/log: [t, method, endpoint, status] per request (most recent 200,000)."""
    return web.json_response([list(entry) for entry in request.app[STATE].stats.log])


async def admin_reset_stats(request: web.Request) -> web.StreamResponse:
    """POST /_sim/reset-stats: zero the counters (data requests are kept)."""
    request.app[STATE].stats.reset()
    return web.json_response({"ok": True})


async def admin_outage(request: web.Request) -> web.StreamResponse:
    """POST /_sim/outage?seconds=S: answer, then refuse connections for S seconds."""
    state = request.app[STATE]
    raw = request.query.get("seconds", "")
    try:
        seconds = float(raw)
    except ValueError:
        seconds = math.nan
    if not (math.isfinite(seconds) and 0 < seconds <= 3600):
        return error(400, f"seconds: accepted: a number of seconds, 0 < S <= 3600; got {raw!r}")
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


# ----------------------------------------------------------------------------- the app


async def _on_startup(app: web.Application) -> None:
    state = app[STATE]
    state.started_at = state.now()
    state.session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120, connect=5))


async def _on_shutdown(app: web.Application) -> None:
    state = app[STATE]
    for task in list(state.tasks):
        task.cancel()
    if state.tasks:
        await asyncio.gather(*state.tasks, return_exceptions=True)
    if state.session is not None:
        await state.session.close()


def build_app(config: SimulatorConfig) -> web.Application:
    """A fresh application (and its state) for one simulated platform."""
    app = web.Application(middlewares=[api_middleware], client_max_size=16 * 1024 * 1024)
    app[STATE] = SimState(config)
    version = "/v{version:[1-4]}"
    add = app.router.add_route
    add("POST", version + "/{kind:profile|subprofile|email}/{target}/datarequest",
        post_datarequest, name="post-datarequest")  # fmt: skip
    add("GET", version + "/datarequest/{rid}", get_datarequest, name="get-datarequest")
    add("GET", version + "/datarequest/{rid}/status", get_status, name="get-status")
    add("GET", version + "/datarequest/{rid}/data", get_data, name="get-data")
    add("GET", version + "/database/{dbid}/profileids", get_profileids, name="get-profileids")
    add("GET", version + "/collection/{cid}/subprofileids", get_subprofileids,
        name="get-subprofileids")  # fmt: skip
    add("POST", "/authenticate", post_authenticate, name="post-authenticate")
    add("GET", "/_sim/stats", admin_stats)
    add("GET", "/_sim/log", admin_log)
    add("POST", "/_sim/reset-stats", admin_reset_stats)
    add("POST", "/_sim/outage", admin_outage)
    add("GET", "/_sim/datarequest/{rid}", admin_datarequest)
    app.on_startup.append(_on_startup)
    app.on_shutdown.append(_on_shutdown)
    return app
