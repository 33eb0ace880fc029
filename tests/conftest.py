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
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import pytest
from click.testing import CliRunner, Result

from batch_export.cli import cli
from batch_export.simulator import Simulator, SimulatorConfig

from .seaweed import Seaweed, start_seaweed

REPO = Path(__file__).resolve().parent.parent
SAMPLES = REPO / "sample_inputs"


@pytest.fixture(autouse=True)
def _private_limit_cache(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every test remembers rate limits in a cache of its own, never under $HOME.

    The environment reaches in-process runs and spawned CLIs alike; one cache
    per test, because simulators reuse ports and tokens, and a limit learnt
    by one test must not start another's search.
    """
    monkeypatch.setenv("BATCH_EXPORT_CACHE_DIR", str(tmp_path_factory.mktemp("limit-cache")))


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

    def get(self, path: str, *, outage_wait: float = 15.0) -> Any:
        """GET an admin endpoint (e.g. /_sim/stats) and decode its JSON.

        A simulated outage refuses the admin routes too (the whole port
        closes), so a refused connection is tried again until ``outage_wait``
        seconds have passed: outages in these tests last a few seconds.
        """
        deadline = time.monotonic() + outage_wait
        while True:
            try:
                with urllib.request.urlopen(self.base_url + path, timeout=30) as resp:
                    return json.load(resp)
            except urllib.error.URLError as exc:
                refused = isinstance(exc.reason, ConnectionRefusedError)
                if not refused or time.monotonic() >= deadline:
                    raise
            time.sleep(0.05)

    def stats(self) -> dict[str, Any]:
        result: dict[str, Any] = self.get("/_sim/stats")
        return result

    def stop(self) -> None:
        if self._stop is not None and self._loop.is_running():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)


#: the ``simulator`` fixture: ``simulator(**SimulatorConfig fields)`` starts one
StartSimulator = Callable[..., SimThread]


@pytest.fixture
def simulator() -> Iterator[StartSimulator]:
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


#: what ``python`` is given before the CLI's arguments
CLI_MODULE: tuple[str, ...] = ("-m", "batch_export")

#: where a spawned CLI's stdout or stderr goes: PIPE, DEVNULL, or an open file
Stream = int | IO[Any]


def spawn_cli(
    args: Sequence[str],
    token: str | None,
    *,
    stdout: Stream = subprocess.PIPE,
    stderr: Stream = subprocess.PIPE,
    python_args: Sequence[str] = CLI_MODULE,
    env: Mapping[str, str] | None = None,
) -> subprocess.Popen[str]:
    """Start ``python -m batch_export ARGS`` as a real process, the token in its environment.

    The one way tests spawn the CLI: signal tests keep the returned process,
    `run_subprocess` runs it to completion. ``python_args`` replaces
    ``-m batch_export`` for a child that prepares itself before running the CLI;
    ``env`` is added to the environment.
    """
    environment = dict(os.environ) | {"COPERNICA_ACCESS_TOKEN": token or ""} | dict(env or {})
    return subprocess.Popen(
        [sys.executable, *python_args, *args],
        env=environment,
        stdout=stdout,
        stderr=stderr,
        text=True,
    )


def run_subprocess(
    args: Sequence[str],
    token: str | None,
    *,
    timeout: float = 120,
    python_args: Sequence[str] = CLI_MODULE,
    extra_env: Mapping[str, str] | None = None,
    **env: str,
) -> subprocess.CompletedProcess[str]:
    """`spawn_cli` run to completion, output captured; killed after ``timeout`` s as by subprocess.run.

    The environment gets ``extra_env`` (a mapping, e.g. S3 credentials) and ``env``.
    """
    environment = {**(extra_env or {}), **env}
    with spawn_cli(args, token, python_args=python_args, env=environment) as proc:
        try:
            stdout, stderr = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)


def journal_lines(out: Path) -> int:
    """How many lines the journal in ``out`` has (0 before it exists)."""
    try:
        with (out / "journal.jsonl").open("rb") as handle:
            return sum(1 for _ in handle)
    except FileNotFoundError:
        return 0


def wait_for_journal(
    out: Path, lines: int, proc: subprocess.Popen[str], deadline: float = 60.0
) -> bool:
    """Poll (with a deadline) until the journal has ``lines`` lines (True) or ``proc`` ended (False)."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if journal_lines(out) >= lines:
            return True
        if proc.poll() is not None:
            return False
        time.sleep(0.01)
    raise AssertionError(f"journal never reached {lines} lines")


def read_manifest(out_dir: Path) -> list[dict[str, Any]]:
    """The manifest's entries."""
    with (out_dir / "manifest.jsonl").open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle]


def write_ids(path: Path, ids: Sequence[object], header: str = "profile_id") -> Path:
    """A one-column CSV with a header."""
    path.write_text(header + "\n" + "".join(f"{i}\n" for i in ids), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def seaweed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seaweed]:
    """One real S3 server (SeaweedFS on 127.0.0.1) for the whole session, stopped at its end."""
    server = start_seaweed(tmp_path_factory.mktemp("seaweed"))
    yield server
    server.stop()


@pytest.fixture
def s3_env(seaweed: Seaweed, monkeypatch: pytest.MonkeyPatch) -> Seaweed:
    """``seaweed``, with its credentials in this process's environment (the AWS chain reads them)."""
    for name, value in seaweed.env().items():
        monkeypatch.setenv(name, value)
    return seaweed
