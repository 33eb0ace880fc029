"""The aiohttp.web application: its routes, its state and its start and shutdown.

Request flow for the API (``/v{N}/...`` and ``/authenticate``): count it,
answer 301 when redirecting, take a rate-limit token for the caller's
account (a refusal is played in the configured or drawn throttle style),
check credentials, then the handler (which may inject a fault, a wire variant
or a hostile behaviour). The admin routes under ``/_sim/`` skip all of that.
The middleware is in middleware.py, the handlers in datarequests.py (with the
bodies in streaming.py), listings.py and admin.py, what they share in replies.py.
"""

from __future__ import annotations

import asyncio

import aiohttp
from aiohttp import web

from .admin import (
    admin_datarequest,
    admin_dkim,
    admin_log,
    admin_outage,
    admin_overload,
    admin_reset_stats,
    admin_stats,
)
from .config import SimulatorConfig
from .datarequests import get_data, get_datarequest, get_status, post_datarequest
from .listings import get_profileids, get_subprofileids
from .middleware import api_middleware, post_authenticate
from .replies import LOADBALANCER_HTML, STATE
from .state import SimState

__all__ = ["LOADBALANCER_HTML", "STATE", "build_app"]


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
    add("POST", "/_sim/overload", admin_overload)
    add("GET", "/_sim/datarequest/{rid}", admin_datarequest)
    add("GET", "/_sim/dkim", admin_dkim)
    app.on_startup.append(_on_startup)
    app.on_shutdown.append(_on_shutdown)
    return app
