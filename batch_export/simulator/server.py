"""Running the simulator: an async context manager for tests, a blocking loop for the CLI."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable
from types import TracebackType
from typing import Any

from aiohttp import web

from .app import STATE, build_app
from .config import SimulatorConfig
from .state import SimState

__all__ = ["Simulator", "run_forever", "serve_forever"]


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
        self._state: SimState | None = None

    async def start(self) -> None:
        """Bind and start serving (what `async with` does on entry)."""
        app = build_app(self.config)
        self._state = app[STATE]
        runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=2.0)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port, backlog=1024, reuse_address=True)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self.port = int(runner.addresses[0][1])
        self._state.base_url = self.base_url

    async def stop(self) -> None:
        """Stop serving; pending webhook deliveries are cancelled."""
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

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

    def __repr__(self) -> str:
        where = self.base_url if self._runner is not None else "stopped"
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
