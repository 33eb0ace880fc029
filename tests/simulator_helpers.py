"""Helpers for the simulator's own tests: a running simulator plus a client for one API version."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any, TypeVar
from urllib.parse import quote

import aiohttp
from aiohttp import web

from batch_export.simulator import Simulator, SimulatorConfig


class Api:
    """Talks to a Simulator the way a v{N} client would (token in query or bearer JWT)."""

    def __init__(self, sim: Simulator, session: aiohttp.ClientSession, version: int = 2) -> None:
        self.sim = sim
        self.session = session
        self.version = version
        self._jwt: str | None = None

    async def jwt(self) -> str:
        if self._jwt is None:
            async with self.session.post(
                self.sim.auth_url, data={"access_token": self.sim.token}
            ) as resp:
                assert resp.status == 200, await resp.text()
                self._jwt = await resp.text()
        return self._jwt

    async def auth(self) -> tuple[dict[str, str], dict[str, str]]:
        """(query params, headers) carrying the credentials for this version."""
        if self.version >= 4:
            return {}, {"Authorization": f"Bearer {await self.jwt()}"}
        return {"access_token": self.sim.token}, {}

    def url(self, path: str) -> str:
        return f"{self.sim.base_url}/v{self.version}/{path.lstrip('/')}"

    async def request(self, method: str, path: str, **kwargs: Any) -> aiohttp.ClientResponse:
        params, headers = await self.auth()
        params.update(kwargs.pop("params", {}))
        headers.update(kwargs.pop("headers", {}))
        resp = await self.session.request(
            method, self.url(path), params=params, headers=headers, allow_redirects=False, **kwargs
        )
        await resp.read()
        return resp

    async def post(self, kind: str, target: str, **kwargs: Any) -> aiohttp.ClientResponse:
        return await self.request("POST", f"{kind}/{quote(target, safe='')}/datarequest", **kwargs)

    async def create(self, kind: str = "profile", target: str = "123") -> str:
        resp = await self.post(kind, target)
        assert resp.status == 201, await resp.text()
        return resp.headers["X-Created"]

    async def get(self, path: str, **kwargs: Any) -> aiohttp.ClientResponse:
        return await self.request("GET", path, **kwargs)

    async def status(self, rid: str) -> dict[str, Any]:
        resp = await self.get(f"datarequest/{rid}/status")
        assert resp.status == 200
        result: dict[str, Any] = await resp.json()
        return result


def request_id_from(headers: Mapping[str, str], content_type: str, body: bytes) -> tuple[str, str]:
    """(where, request ID) of a successful POST, wherever the wire put the ID.

    X-Created, else the last path segment of X-location or Location, else a
    JSON body's "id", else a plain-text body, as the API notes tell a client.
    """
    if "X-Created" in headers:
        return "x-created", headers["X-Created"]
    for header in ("X-location", "Location"):
        if header in headers:
            return header.lower(), headers[header].rstrip("/").rsplit("/", 1)[-1]
    if content_type == "application/json":
        return "json-body", str(json.loads(body)["id"])
    return "text-body", body.decode().strip()


async def request_id_of(resp: aiohttp.ClientResponse) -> tuple[str, str]:
    """`request_id_from` for a response whose body can still be read."""
    return request_id_from(resp.headers, resp.content_type, await resp.read())


@asynccontextmanager
async def running(version: int = 2, **overrides: Any) -> AsyncIterator[Api]:
    """A simulator (instant, 2 KB exports unless overridden) and an Api client for it."""
    overrides.setdefault("prepare_delay", "0")
    overrides.setdefault("export_size", 2_000)
    async with Simulator(SimulatorConfig(**overrides)) as sim, aiohttp.ClientSession() as session:
        yield Api(sim, session, version)


async def wait_for(
    condition: Callable[[], Awaitable[bool]], timeout: float = 10.0, interval: float = 0.02
) -> None:
    """Poll `condition` until true; fail the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not await condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(interval)


_Relay = TypeVar("_Relay", bound="PostRelay")


class PostRelay:
    """A loopback web server that hands every POST to ``_relay`` (a test's ``--push-url``).

    Subclasses write ``_relay``; ``self._session`` is theirs for relaying on,
    and ``url`` is where the run should send its deliveries.
    """

    url = ""
    _runner: web.AppRunner | None = None
    _session: aiohttp.ClientSession | None = None

    async def _relay(self, request: web.Request) -> web.Response:
        raise NotImplementedError

    async def __aenter__(self: _Relay) -> _Relay:
        self._session = aiohttp.ClientSession()
        app = web.Application()
        app.router.add_post("/{tail:.*}", self._relay)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}/proxy"
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._runner is not None and self._session is not None
        await self._runner.cleanup()
        await self._session.close()
