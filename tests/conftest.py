"""Shared fixtures: a simulator on a free loopback port, and ways to run the CLI.

The simulator runs in a thread with its own event loop, so a test can drive
the exporter either in-process (click's CliRunner, which calls asyncio.run)
or as a real subprocess, while reading the simulator's counters over HTTP.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from batch_export.cli import cli
from batch_export.simulator import Simulator, SimulatorConfig

REPO = Path(__file__).resolve().parent.parent
SAMPLES = REPO / "sample_inputs"


class SimThread:
    """A Simulator serving from a background thread until ``stop()``."""

    def __init__(self, config: SimulatorConfig) -> None:
        self.config = config
        self._ready = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self.base_url = ""
        self.auth_url = ""
        self.token = config.token
        self._thread = threading.Thread(target=self._serve, name="simulator", daemon=True)
        self._thread.start()
        if not self._ready.wait(30):
            raise RuntimeError("simulator did not start within 30 s")
        if self._error is not None:
            raise self._error

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._main())
        except BaseException as exc:  # surfaced to the test thread
            self._error = exc
            self._ready.set()
        finally:
            self._loop.close()

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        async with Simulator(self.config, host="127.0.0.1", port=0) as sim:
            self.base_url, self.auth_url, self.token = sim.base_url, sim.auth_url, sim.token
            self._ready.set()
            await self._stop.wait()

    def get(self, path: str) -> Any:
        """GET an admin endpoint (e.g. /_sim/stats) and decode its JSON."""
        with urllib.request.urlopen(self.base_url + path, timeout=30) as resp:
            return json.load(resp)

    def stats(self) -> dict[str, Any]:
        result: dict[str, Any] = self.get("/_sim/stats")
        return result

    def stop(self) -> None:
        if self._stop is not None and self._loop.is_running():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)


@pytest.fixture
def simulator() -> Iterator[Callable[..., SimThread]]:
    """Factory: ``simulator(**SimulatorConfig fields)`` starts one; all stop at teardown."""
    started: list[SimThread] = []

    def start(**overrides: Any) -> SimThread:
        overrides.setdefault("prepare_delay", "0.05:0.3")
        overrides.setdefault("export_size", 2_000)
        sim = SimThread(SimulatorConfig(**overrides))
        started.append(sim)
        return sim

    yield start
    for sim in started:
        sim.stop()


@dataclass
class CliOutcome:
    exit_code: int
    stdout: str
    stderr: str


def api_args(sim: SimThread, version: int = 2) -> list[str]:
    """The options that point a run at ``sim``."""
    return ["--api-url", sim.base_url, "--auth-url", sim.auth_url, "--api-version", str(version)]


def run_cli(args: Sequence[str], token: str | None, **env: str) -> CliOutcome:
    """Run ``batch-export ARGS`` in-process with the token in the environment."""
    environment = {"COPERNICA_ACCESS_TOKEN": token or ""} | env
    result: Result = CliRunner().invoke(cli, list(args), env=environment, catch_exceptions=False)
    return CliOutcome(result.exit_code, result.stdout, result.stderr)


def run_subprocess(
    args: Sequence[str], token: str | None, *, timeout: float = 120, **env: str
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m batch_export ARGS`` as a real process."""
    environment = dict(os.environ) | {"COPERNICA_ACCESS_TOKEN": token or ""} | env
    return subprocess.run(
        [sys.executable, "-m", "batch_export", *args],
        env=environment,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def read_manifest(out_dir: Path) -> list[dict[str, Any]]:
    """The manifest's entries."""
    with (out_dir / "manifest.jsonl").open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle]


def write_ids(path: Path, ids: Sequence[object], header: str = "profile_id") -> Path:
    """A one-column CSV with a header."""
    path.write_text(header + "\n" + "".join(f"{i}\n" for i in ids), encoding="utf-8")
    return path
