"""The way into the API: counting, redirects, rate limiting, auth and ``/authenticate``.

Every ``/v{N}/...`` and ``/authenticate`` request is counted and logged,
answered 301 when redirecting, charged a rate-limit token for the caller's
account (a refusal is played in the configured or drawn throttle style) and
its credentials checked before its handler runs. POST /authenticate itself
(the v4 token-for-JWT exchange, with its blips) lives here too. The admin
routes under ``/_sim/`` skip all of it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime, timezone
from email.utils import format_datetime

from aiohttp import web

from .auth import account_of
from .ratelimit import TokenBuckets
from .replies import (
    LOADBALANCER_HEADER,
    LOADBALANCER_HTML,
    STATE,
    Aborted,
    Handler,
    abort,
    aborted_response,
    empty_reply,
    error,
)
from .state import SimState

__all__ = ["api_middleware", "post_authenticate"]

log = logging.getLogger(__name__)

_ROUTE_ENDPOINTS = {
    "post-datarequest": "POST datarequest",
    "get-datarequest": "GET datarequest",
    "get-status": "GET status",
    "get-data": "GET data",
    "post-authenticate": "POST authenticate",
    "get-profileids": "GET profileids",
    "get-subprofileids": "GET subprofileids",
}


def _throttled(state: SimState, wait: float) -> web.Response:
    """A refusal to serve this call now, in the configured (or drawn) throttle style."""
    style = state.wire.throttle_style()
    if style in ("503-html", "504-html"):
        return _loadbalancer_page(int(style[:3]))
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


def _loadbalancer_page(status: int) -> web.Response:
    """The overloaded load balancer's refusal: an HTML page, no Retry-After."""
    return web.Response(
        status=status, text=LOADBALANCER_HTML, content_type="text/html", headers=LOADBALANCER_HEADER
    )


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
    # Logged at arrival, not when the answer is done: the log is read as "what
    # the platform was sent, when", and answer times bunch under load.
    arrived = state.now() - state.started_at
    route = request.match_info.route.name
    endpoint = _ROUTE_ENDPOINTS.get(route or "", "other")
    if endpoint != "other":
        stats.requests[endpoint] += 1
    if "access_token" in request.query or "Authorization" in request.headers:
        stats.credentials_received += 1
    status = 0
    try:
        response = await _guarded(request, handler, state)
        status = 0 if isinstance(response, Aborted) else response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    except ConnectionError as exc:
        # The client is gone (an outage cut its connection, or it hung up)
        # while the answer was being written: nobody to answer, and a raised
        # error would be logged by aiohttp with a whole traceback.
        log.warning("%s %s: connection closed while answering (%s)", request.method, path, exc)
        return aborted_response()
    finally:
        stats.record(arrived, request.method, endpoint, status)


async def _guarded(request: web.Request, handler: Handler, state: SimState) -> web.StreamResponse:
    cfg = state.config
    is_api = request.path.startswith("/v")
    if cfg.redirect_to is not None and is_api:
        location = cfg.redirect_to.rstrip("/") + request.raw_path
        return web.Response(status=301, headers={"Location": location})
    if request.match_info.route.name is None:
        return error(404, "Unknown call")
    key, failure = await _authenticate(request, state)
    if state.now() < state.overloaded_until:  # an overload episode (/_sim/overload)
        return _loadbalancer_page(503)
    if state.rate_limit is not None:
        wait = state.rate_limit.take(key, state.now())
        if wait > 0:
            return _throttled(state, wait)
    elif state.wire.overloaded():
        return _throttled(state, 1.0)
    if failure is not None:
        return failure
    return await handler(request)


async def post_authenticate(request: web.Request) -> web.StreamResponse:
    """Exchange the access token (already checked) for a JWT, unless a blip is played."""
    state = request.app[STATE]
    blip = state.wire.auth_fault()
    if blip == "503":
        return error(503, "Service temporarily unavailable")
    if blip == "429":
        return error(429, "Too many requests", {"Retry-After": "1"})
    if blip == "reset":
        abort(request, reset=True)
        return aborted_response()
    if blip in ("slow", "timeout"):
        await asyncio.sleep(state.config.slow_seconds)
        if blip == "timeout":
            return empty_reply(request)
    state.wire.auth_succeeded()
    return web.Response(text=state.jwt.issue(state.account), content_type="text/plain")
