"""Running the simulator: an async context manager for tests, a blocking loop for the CLI."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import signal
import socket
import struct
from collections.abc import Callable
from types import TracebackType
from typing import Any

from aiohttp import web

from .app import STATE, build_app
from .config import SimulatorConfig
from .state import SimState

__all__ = ["Simulator", "run_forever", "serve_forever"]

log = logging.getLogger(__name__)
_REBIND_ATTEMPTS = 100  # x 50 ms: how long the end of an outage waits for its port


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


class Simulator:
    """A simulated platform listening on `host`:`port` (0 = a free port) while in use.

    >>> async with Simulator(SimulatorConfig(prepare_delay="0")) as sim:
    ...     sim.base_url  # 'http://127.0.0.1:PORT'
    """

    def __init__(
        self, config: SimulatorConfig | None = None, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.config = config if config is not None else SimulatorConfig()
        self.host = host
        self.port = port
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None
        self._state: SimState | None = None
        self._serving = asyncio.Event()
        self._outage_until = 0.0
        self._reopener: asyncio.Task[None] | None = None
        self._outage_loop: asyncio.Task[None] | None = None

    def _new_site(self, runner: web.AppRunner) -> web.TCPSite:
        return web.TCPSite(runner, self.host, self.port, backlog=1024, reuse_address=True)

    async def start(self) -> None:
        """Bind and start serving (what `async with` does on entry)."""
        app = build_app(self.config)
        self._state = app[STATE]
        runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=2.0)
        await runner.setup()
        site = self._new_site(runner)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self._site = site
        self.port = int(runner.addresses[0][1])
        self._state.base_url = self.base_url
        self._state.outage_hook = self._outage_from_app
        self._serving.set()
        if self.config.outage_interval() is not None:
            self._outage_loop = asyncio.create_task(self._random_outages())

    async def stop(self) -> None:
        """Stop serving (also in the middle of an outage); pending webhook deliveries are cancelled."""
        tasks = [t for t in (self._outage_loop, self._reopener) if t is not None]
        self._outage_loop = self._reopener = None
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._runner is not None:
            runner, self._runner = self._runner, None
            self._site = None
            self._serving.clear()
            await runner.cleanup()

    # ------------------------------------------------------------------- outages

    @property
    def serving(self) -> bool:
        """True while the port accepts connections (False during an outage or when stopped)."""
        return self._serving.is_set()

    async def until_serving(self) -> None:
        """Return once the port accepts connections again (at once when it does)."""
        await self._serving.wait()

    async def outage(self, seconds: float, *, spare: asyncio.BaseTransport | None = None) -> None:
        """Refuse connections for `seconds`: returns once the port refuses.

        The listening socket is closed (new connections get ECONNREFUSED) and
        every open connection is reset, so keep-alive clients are cut off too
        (`spare` excepted: the admin endpoint's own connection, which closes
        after its answer). The same port is bound again after `seconds`; an
        outage during an outage extends it.
        """
        if not (math.isfinite(seconds) and seconds > 0):
            raise ValueError("outage seconds must be a finite number > 0")
        runner = self._runner
        if runner is None:
            raise RuntimeError("the simulator is not running")
        loop = asyncio.get_running_loop()
        stats = self.state.stats
        until = loop.time() + seconds
        stats.outage_seconds += max(0.0, until - max(self._outage_until, loop.time()))
        self._outage_until = max(self._outage_until, until)
        stats.outages += 1
        stats.wire["outage"] += 1
        if self._site is not None:
            site, self._site = self._site, None
            self._serving.clear()
            await site.stop()  # closes the listening socket at once
            self._cut_connections(runner, spare)
        if self._reopener is None or self._reopener.done():
            self._reopener = asyncio.create_task(self._reopen(runner))

    async def _outage_from_app(self, seconds: float, spare: asyncio.BaseTransport | None) -> None:
        await self.outage(seconds, spare=spare)

    @staticmethod
    def _cut_connections(runner: web.AppRunner, spare: asyncio.BaseTransport | None) -> None:
        server = runner.server
        if server is None:
            return
        for handler in server.connections:
            transport = handler.transport
            if transport is None or transport is spare:
                continue
            sock = transport.get_extra_info("socket")
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            transport.abort()

    async def _reopen(self, runner: web.AppRunner) -> None:
        loop = asyncio.get_running_loop()
        # An outage during the outage moves the deadline: sleep until it stops moving.
        while (left := self._outage_until - loop.time()) > 0:  # noqa: ASYNC110
            await asyncio.sleep(left)
        for attempt in range(_REBIND_ATTEMPTS):
            site = self._new_site(runner)
            try:
                await site.start()
            except OSError as exc:
                if attempt == _REBIND_ATTEMPTS - 1:
                    log.error("simulator: cannot listen on port %s again: %s", self.port, exc)
                    raise
                await asyncio.sleep(0.05)
                continue
            self._site = site
            self._serving.set()
            return

    async def _random_outages(self) -> None:
        """Outages every `outage_every` seconds (jittered in the mixed wire)."""
        while True:
            plan = self.state.wire.next_outage()
            if plan is None:
                return
            wait, length = plan
            await asyncio.sleep(wait)
            await self.outage(length)
            await self._serving.wait()

    async def __aenter__(self) -> Simulator:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    @property
    def base_url(self) -> str:
        """``http://HOST:PORT``; the API lives under ``/v{N}/``."""
        return f"http://{_url_host(self.host)}:{self.port}"

    @property
    def auth_url(self) -> str:
        """Where v4 clients POST the access token for a JWT."""
        return self.base_url + "/authenticate"

    @property
    def token(self) -> str:
        """The one valid access token."""
        return self.config.token

    @property
    def state(self) -> SimState:
        """The live state (for white-box tests); only while running."""
        if self._state is None:
            raise RuntimeError("the simulator is not running")
        return self._state

    def stats(self) -> dict[str, Any]:
        """The same JSON as ``GET /_sim/stats``."""
        return self.state.stats.snapshot()

    def dkim_records(self) -> dict[str, str]:
        """``{name: TXT}``: the DKIM record(s) that publish the key signed reports use.

        The same as ``GET /_sim/dkim``; a test serves them from its own DNS server.
        """
        return self.state.signer.dkim_records()

    def __repr__(self) -> str:
        where = self.base_url if self._runner is not None else "stopped"
        if self._runner is not None and not self.serving:
            where += " (outage)"
        return f"Simulator({where}, seed={self.config.seed})"


async def serve_forever(
    config: SimulatorConfig, host: str, port: int, on_ready: Callable[[str], None]
) -> None:
    """Serve until SIGINT/SIGTERM, calling `on_ready(base_url)` once listening."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    installed: list[signal.Signals] = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
            installed.append(sig)
        except (NotImplementedError, RuntimeError):  # pragma: no cover - non-Unix
            pass
    try:
        async with Simulator(config, host, port) as sim:
            on_ready(sim.base_url)
            await stop.wait()
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)


def run_forever(
    config: SimulatorConfig, host: str, port: int, on_ready: Callable[[str], None]
) -> None:
    """Blocking form of `serve_forever` for the CLI; returns after a clean shutdown."""
    asyncio.run(serve_forever(config, host, port, on_ready))
