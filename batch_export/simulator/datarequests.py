"""The datarequest calls: POST a request, GET the export, its status and its data.

A POST checks the target, plays the faults and hostile behaviours that refuse
it, takes the optional ``report`` (an email address or a loopback webhook) and
answers with the new request ID where the wire puts it. The GETs share fault
injection and the lookup, answer the placeholder or 404 while pending and hand
a ready export to streaming.
"""

from __future__ import annotations

import asyncio
import math

from aiohttp import web

from .config import SimulatorConfig
from .exports import export_length
from .replies import (
    EMAIL_ADDRESS,
    NUMERIC_ID,
    STATE,
    abort,
    aborted_response,
    empty_reply,
    error,
)
from .state import DataRequest, SimState
from .streaming import serve_junk, stream_export, trickle
from .webhooks import deliver_export, is_loopback_url

__all__ = ["get_data", "get_datarequest", "get_status", "post_datarequest"]


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
        if session is None or req.forgotten_at != math.inf:
            return None  # a lost request is never delivered
        signer = state.signer if state.wire.report_signed() else None
        delay = req.ready_at - state.now()
        task = asyncio.ensure_future(
            deliver_export(session, report, rid, state.spec_for(req), delay, state.stats, signer)
        )
        state.tasks.add(task)
        task.add_done_callback(state.tasks.discard)
        return None
    if EMAIL_ADDRESS.match(report):
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
        if not EMAIL_ADDRESS.match(target):
            return error(400, f"Invalid email address: {target!r}")
    elif not NUMERIC_ID.match(target):
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
        abort(request, reset=True)
        return aborted_response()
    if fault == "empty":  # created, but the answer never comes: an ambiguous POST
        return empty_reply(request)
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
        return state, fault, None, "", empty_reply(request)
    if fault == "slow":
        await asyncio.sleep(state.config.slow_seconds)
    req = state.requests.get(request.match_info["rid"])
    phase = "unknown" if req is None else state.phase(req, state.now())
    if phase == "expired":
        state.stats.expired_seen += 1
    elif phase == "forgotten":
        state.stats.forgotten_seen += 1
        req, phase = None, "unknown"  # indistinguishable from an ID it never issued
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
            return await serve_junk(request, state, state.spec_for(req), junk)
        if state.behaviour(req.target) == "trickle":
            return await trickle(request, state, state.spec_for(req))
        return await stream_export(request, state, state.spec_for(req), fault)
    if fault in ("reset", "truncate"):
        abort(request, reset=True)
        return aborted_response()
    return response


async def get_status(request: web.Request) -> web.StreamResponse:
    """pending (with a growing byte count), available, or not available."""
    state, fault, req, phase, early = await _get_common(request)
    if early is not None:
        return early
    if fault in ("reset", "truncate"):
        abort(request, reset=True)
        return aborted_response()
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
