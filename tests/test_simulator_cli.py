"""The `simulate` command, as a real subprocess and through click's runner."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from click.testing import CliRunner

import batch_export.simulator
from batch_export.simulator.command import simulate

pytestmark = pytest.mark.timeout(60)

# The directory holding the batch_export package, whichever checkout it is in.
PACKAGE_ROOT = Path(batch_export.simulator.__file__).resolve().parents[2]


@asynccontextmanager
async def simulator_process(*args: str) -> AsyncIterator[asyncio.subprocess.Process]:
    """`python -m batch_export.simulator ARGS` as a child process; killed if still running."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PACKAGE_ROOT), env.get("PYTHONPATH")]))
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "batch_export.simulator",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    try:
        yield proc
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def first_line(proc: asyncio.subprocess.Process) -> str:
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), 30)
    assert line, "the simulator exited before printing anything"
    return line.decode()


async def stop(proc: asyncio.subprocess.Process, sig: signal.Signals) -> tuple[int, str]:
    """Send `sig`, wait for the exit, and return (exit code, stderr)."""
    assert proc.stderr is not None
    proc.send_signal(sig)
    _, err = await asyncio.wait_for(proc.communicate(), 15)
    assert proc.returncode is not None
    return proc.returncode, err.decode()


async def test_json_line_then_serves_then_stops_on_sigterm():
    """`simulate --port 0 --json` prints one JSON line, serves the API, and exits 0 on SIGTERM."""
    async with simulator_process("--port", "0", "--json", "--prepare-delay", "0") as proc:
        info = json.loads(await first_line(proc))
        assert set(info) == {"base_url", "api_url", "auth_url", "token"}
        assert info["base_url"].startswith("http://127.0.0.1:")
        assert info["auth_url"] == info["base_url"] + "/authenticate"
        async with aiohttp.ClientSession() as session:
            url = f"{info['api_url']}/v3/profile/1/datarequest"
            async with session.post(url, params={"access_token": info["token"]}) as resp:
                assert resp.status == 201
                rid = resp.headers["X-Created"]
            async with session.get(
                f"{info['base_url']}/v3/datarequest/{rid}", params={"access_token": info["token"]}
            ) as resp:
                assert json.loads(await resp.read())["info"] == {"type": "profile", "id": 1}
        code, err = await stop(proc, signal.SIGTERM)
        assert code == 0, err
        assert "Traceback" not in err


async def test_human_output_and_ctrl_c():
    """Without --json it prints the URL, the dummy token and an example run; SIGINT exits cleanly."""
    async with simulator_process("--port", "0", "--token", "tok-123") as proc:
        assert proc.stdout is not None
        banner = await first_line(proc)
        assert "http://127.0.0.1:" in banner
        rest = b""
        while b"batch-export run" not in rest:
            rest += await asyncio.wait_for(proc.stdout.readline(), 10)
        assert b"tok-123" in rest
        code, err = await stop(proc, signal.SIGINT)
        assert code == 0
        assert "Traceback" not in err


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--prepare-delay", "soon"], "accepted"),
        (["--export-size", "12q"], "accepted"),
        (["--fault-kinds", "500,boom"], "accepted"),
        (["--missing-ids", "5,x"], "accepted"),
        (["--database", "7"], "ID=COUNT"),
        (["--fault-rate", "2"], "0<=x<=1"),
        (["--behaviour", "3=explode"], "accepted"),
    ],
)
def test_bad_options_are_usage_errors(args, needle):
    """Bad option values exit 2 with a message saying what is accepted, never a traceback."""
    result = CliRunner().invoke(simulate, args)
    assert result.exit_code == 2, result.output
    assert needle in result.output
    assert "Traceback" not in result.output


def test_help_has_an_example():
    """`simulate --help` shows an example command line."""
    result = CliRunner().invoke(simulate, ["--help"])
    assert result.exit_code == 0
    assert "Example" in result.output and "batch-export simulate --port" in result.output


def _vm_hwm_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM in /proc status")


async def _download(session: aiohttp.ClientSession, url: str, **kwargs: Any) -> int:
    total = 0
    async with session.get(url, **kwargs) as resp:
        assert resp.status == 200
        async for chunk in resp.content.iter_chunked(1 << 20):
            total += len(chunk)
    return total


@pytest.mark.timeout(20)
@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")
async def test_200mb_export_streams_in_bounded_memory():
    """Serving a 200 MB export grows the simulator process's peak RSS by less than 50 MB."""
    size = 200_000_000
    args = ["--port", "0", "--json", "--prepare-delay", "0", "--export-size", "200m"]
    async with simulator_process(*args) as proc:
        info = json.loads(await first_line(proc))
        auth = {"access_token": info["token"]}
        base = info["base_url"]
        async with aiohttp.ClientSession() as session:

            async def create(target: str) -> str:
                url = f"{base}/v2/profile/{target}/datarequest"
                async with session.post(url, params=auth) as resp:
                    assert resp.status == 201
                    return resp.headers["X-Created"]

            # Warm up (imports, the shared base64 block) with a short read, then measure.
            warm = await create("1")
            async with session.get(f"{base}/v2/datarequest/{warm}/status", params=auth) as resp:
                assert (await resp.json())["available"] == size
            baseline = _vm_hwm_kib(proc.pid)
            rid = await create("2")
            got = await _download(session, f"{base}/v2/datarequest/{rid}/data", params=auth)
            assert got == size
            peak = _vm_hwm_kib(proc.pid)
        growth_mb = (peak - baseline) / 1024
        print(f"simulator VmHWM: baseline {baseline / 1024:.1f} MB, peak {peak / 1024:.1f} MB")
        assert growth_mb < 50, f"peak RSS grew by {growth_mb:.1f} MB while streaming 200 MB"
