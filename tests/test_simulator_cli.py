"""The `simulate` command, as a real subprocess and through click's runner."""

from __future__ import annotations

import asyncio
import errno
import json
import os
import signal
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from click.testing import CliRunner

import batch_export.simulator
import batch_export.simulator.command as command
from batch_export.simulator import SimulatorConfig
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


async def test_json_line_then_serves_then_stops_on_sigterm() -> None:
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


async def test_human_output_and_ctrl_c() -> None:
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
        (["--wire", "wild"], "'classic', 'mixed'"),
        (["--request-id-style", "uuid"], "'numeric', 'opaque'"),
        (["--placeholder-wording", "soon"], "'Data not available (yet)'"),
        (["--post-status", "202"], "'201', '200'"),
        (["--request-id-in", "cookie"], "'x-created', 'x-location', 'location'"),
        (["--throttle-style", "418"], "'429', '429-date', '429-bare', '503-html', '504-html'"),
        (["--trickle-seconds", "0"], "x>0"),
        (["--junk-times", "-2"], "x>=-1"),
        (["--auth-fault-rate", "1.5"], "0<=x<=1"),
        (["--auth-fault-kinds", "503,boom"], "accepted: a comma-separated subset of 503,429"),
        (["--auth-faults-first", "-1"], "x>=0"),
        (["--outage-every", "soon"], "accepted: 'auto', 'never'"),
        (["--outage-every", "-3"], "accepted: 'auto', 'never'"),
        (["--outage-seconds", "0"], "x>0"),
        (["--mixed-exclude", "post,chaos"], "accepted: a comma-separated subset of placeholder"),
        (["--mixed-rate", "junk=2"], "accepted: NAME=P"),
        (["--mixed-rate", "chaos=0.1"], "accepted: NAME=P"),
        (["--retry-after-date", "--throttle-style", "503-html"], "alias of throttle_style"),
    ],
)
def test_bad_options_are_usage_errors(args: list[str], needle: str) -> None:
    """Bad option values exit 2 with a message saying what is accepted, never a traceback."""
    result = CliRunner().invoke(simulate, args)
    assert result.exit_code == 2, result.output
    assert needle in result.output
    assert "Traceback" not in result.output


def _config_of(monkeypatch: pytest.MonkeyPatch, args: list[str]) -> SimulatorConfig:
    """The SimulatorConfig `simulate ARGS` would serve (the server itself is not started)."""
    seen: list[SimulatorConfig] = []
    monkeypatch.setattr(command, "run_forever", lambda config, *rest: seen.append(config))
    result = CliRunner().invoke(simulate, args)
    assert result.exit_code == 0, result.output
    assert len(seen) == 1
    return seen[0]


def test_default_options_are_the_default_config(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without options `simulate` serves exactly SimulatorConfig(): the classic wire, numeric IDs."""
    assert _config_of(monkeypatch, []) == SimulatorConfig()


def test_wire_options_reach_the_config(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every wire option lands in its SimulatorConfig field."""
    config = _config_of(
        monkeypatch,
        [
            "--wire", "mixed",
            "--request-id-style", "opaque",
            "--placeholder-info",
            "--placeholder-wording", "Data not available (yet).",
            "--post-status", "200",
            "--request-id-in", "text-body",
            "--throttle-style", "504-html",
            "--trickle-seconds", "0.5",
            "--junk-times", "-1",
            "--auth-fault-rate", "0.25",
            "--auth-fault-kinds", "503,timeout",
            "--auth-faults-first", "3",
            "--outage-every", "12.5",
            "--outage-seconds", "1.5",
            "--mixed-exclude", "junk,outage",
            "--mixed-rate", "junk=0.5",
            "--mixed-rate", "empty=0",
            "--fault-kinds", "empty,500",
            "--behaviour", "7=trickle",
            "--behaviour", "8=junk-array",
        ],
    )  # fmt: skip
    assert config.wire == "mixed" and config.request_id_style == "opaque"
    assert config.placeholder_info is True
    assert config.placeholder_wording == "Data not available (yet)."
    assert (config.post_status, config.request_id_in) == (200, "text-body")
    assert config.throttle_style == "504-html" and config.throttle == "504-html"
    assert (config.trickle_seconds, config.junk_times) == (0.5, -1)
    assert (config.auth_fault_rate, config.auth_fault_kinds) == (0.25, ("503", "timeout"))
    assert config.auth_faults_first == 3
    assert (config.outage_every, config.outage_seconds) == (12.5, 1.5)
    assert config.mixed_exclude == frozenset({"junk", "outage"})
    assert config.mixed_rates == {"junk": 0.5, "empty": 0.0}
    assert config.fault_kinds == ("empty", "500")
    assert config.behaviours == {"7": "trickle", "8": "junk-array"}


@pytest.mark.parametrize(
    ("value", "expected"), [("auto", "auto"), ("never", None), ("0", None), ("3", 3.0)]
)
def test_outage_every_values(
    monkeypatch: pytest.MonkeyPatch, value: str, expected: str | float | None
) -> None:
    """--outage-every takes 'auto', 'never' (or 0) and a number of seconds."""
    assert _config_of(monkeypatch, ["--outage-every", value]).outage_every == expected


def test_retry_after_date_still_works(monkeypatch: pytest.MonkeyPatch) -> None:
    """The old --retry-after-date flag still means Retry-After as an HTTP date."""
    config = _config_of(monkeypatch, ["--retry-after-date"])
    assert config.retry_after_http_date is True and config.throttle == "429-date"


async def _refused(host: str, port: int) -> bool:
    try:
        _, writer = await asyncio.open_connection(host, port)
    except ConnectionRefusedError:
        return True
    writer.close()
    await writer.wait_closed()
    return False


async def test_mixed_wire_process_serves_and_takes_an_outage() -> None:
    """`simulate --wire mixed` serves the API; POST /_sim/outage makes its port refuse, then serve again."""
    args = [
        "--port",
        "0",
        "--json",
        "--prepare-delay",
        "0",
        "--wire",
        "mixed",
        "--outage-every",
        "never",
    ]
    async with simulator_process(*args) as proc:
        info = json.loads(await first_line(proc))
        assert set(info) == {"base_url", "api_url", "auth_url", "token"}
        base, auth = info["base_url"], {"access_token": info["token"]}
        host, port = "127.0.0.1", int(base.rsplit(":", 1)[1])
        async with aiohttp.ClientSession() as session:
            created = 0
            for target in range(1, 40):
                try:
                    url = f"{base}/v2/profile/{target}/datarequest"
                    async with session.post(url, params=auth) as resp:
                        created += resp.status in (200, 201)
                except aiohttp.ClientError:
                    pass  # a rare empty reply: the mixed wire's doing
            assert created > 30
            async with session.post(f"{base}/_sim/outage", params={"seconds": "0.8"}) as resp:
                assert resp.status == 200
            deadline = time.monotonic() + 10
            while not await _refused(host, port):
                assert time.monotonic() < deadline, "the port never refused"
                await asyncio.sleep(0.005)
            with pytest.raises(aiohttp.ClientConnectorError) as caught:
                await session.get(f"{base}/_sim/stats")
            assert caught.value.os_error.errno == errno.ECONNREFUSED
            while await _refused(host, port):
                assert time.monotonic() < deadline, "the port never served again"
                await asyncio.sleep(0.02)
            async with session.get(f"{base}/_sim/stats") as resp:
                stats = await resp.json()
            assert stats["outages"] == 1
            assert stats["wire"]["post-200"] + stats["wire"]["post-201"] == created
        code, err = await stop(proc, signal.SIGTERM)
        assert code == 0, err
        assert "Traceback" not in err


def test_help_has_an_example() -> None:
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
async def test_200mb_export_streams_in_bounded_memory() -> None:
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


async def test_an_outage_cutting_a_waiting_answer_is_one_log_line_not_a_traceback() -> None:
    """A GET sleeping in a 'slow' fault when an outage cuts its connection: one line on stderr.

    The answer is written to a closed transport when the sleep ends; raised,
    aiohttp would log it with a whole traceback.
    """
    args = ["--port", "0", "--json", "--prepare-delay", "0", "--outage-every", "never"]
    args += ["--fault-rate", "1", "--fault-kinds", "slow", "--slow-seconds", "1"]
    async with simulator_process(*args) as proc:
        info = json.loads(await first_line(proc))
        auth = {"access_token": info["token"]}
        base = info["base_url"]
        async with aiohttp.ClientSession() as session, aiohttp.ClientSession() as admin:

            async def stats() -> dict[str, Any]:
                async with admin.get(f"{base}/_sim/stats") as resp:
                    found: dict[str, Any] = await resp.json()
                    return found

            async with session.post(f"{base}/v2/profile/1/datarequest", params=auth) as resp:
                rid = resp.headers["X-Created"]
            url = f"{base}/v2/datarequest/{rid}"
            waiting = asyncio.ensure_future(session.get(url, params=auth))
            deadline = time.monotonic() + 10
            while (await stats())["requests"].get("GET datarequest", 0) < 1:
                assert time.monotonic() < deadline, "the GET never arrived"
                await asyncio.sleep(0.01)
            async with admin.post(f"{base}/_sim/outage", params={"seconds": "0.2"}) as resp:
                assert resp.status == 200
            with pytest.raises(aiohttp.ClientError):
                await waiting
            while True:  # until the GET's handler has ended (status 0: no answer reached us)
                try:
                    if (await stats())["responses"].get("0", 0) >= 1:
                        break
                except aiohttp.ClientConnectionError:
                    pass  # the outage
                assert time.monotonic() < deadline, "the cut GET never ended"
                await asyncio.sleep(0.02)
        code, err = await stop(proc, signal.SIGTERM)
    assert code == 0, err
    assert "Traceback" not in err, err
    cut = [line for line in err.splitlines() if "connection closed while answering" in line]
    assert len(cut) == 1, err
    assert cut[0].startswith(f"GET /v2/datarequest/{rid}: "), cut
