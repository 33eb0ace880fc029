"""The exporter against the platform as documented and as observed in the field.

Each test switches on one answer the vendor's pages or the field reports
describe (and that our simulator did not play before), drives a whole run
over HTTP, and checks that no export is lost and no target fails for a
reason that says nothing about it.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import time
import urllib.request
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from batch_export.errors import InternalError, OutageError
from batch_export.platform.limits import RetryPolicy
from batch_export.platform.settings import ApiSettings
from batch_export.redaction import Secret
from batch_export.run.options import RunOptions
from batch_export.run.orchestrate import run_export
from batch_export.storage.local import LocalSink

from .conftest import (
    SimThread,
    StartSimulator,
    api_args,
    read_manifest,
    run_cli,
    run_subprocess,
    spawn_cli,
    wait_for_journal,
    write_ids,
)
from .test_run import assert_files_verify


def _options(sim: SimThread, tmp_path: Path, ids: range, **api: Any) -> RunOptions:
    csv = write_ids(tmp_path / "ids.csv", list(ids))
    return RunOptions(
        input=str(csv),
        out_dir=tmp_path / "out",
        api=ApiSettings(api_url=sim.base_url, token=Secret(sim.token), **api),
        retry=RetryPolicy(instant=True),
        handle_signals=False,
    )


def _assert_every_file_exact(sim: SimThread, out: Path, count: int) -> list[dict[str, Any]]:
    """Every target done, and each file byte-identical to what the simulator serves."""
    entries = read_manifest(out)
    assert len(entries) == count
    assert {e["status"] for e in entries} == {"done"}, [
        e for e in entries if e["status"] != "done"
    ][:3]
    assert_files_verify(out, entries)
    for entry in entries[:: max(1, count // 20)]:
        served = sim.get(f"/_sim/datarequest/{entry['request_id']}")
        assert served["sha256"] == entry["sha256"]
    return entries


def _post_admin(sim: SimThread, path: str) -> Any:
    request = urllib.request.Request(sim.base_url + path, data=b"", method="POST")
    with urllib.request.urlopen(request, timeout=30) as resp:
        return json.load(resp)


# ------------------------------------------------------------------ the placeholder


@pytest.mark.parametrize("wording", ["Data not available (yet).", "no data available (yet)."])
def test_a_placeholder_with_info_is_not_ready_not_a_broken_export(
    simulator: StartSimulator, tmp_path: Path, wording: str
) -> None:
    """The docs' own placeholder, {"info": ..., "data": "Data not available (yet)."}, only reschedules."""
    sim = simulator(placeholder_info=True, placeholder_wording=wording, prepare_delay="0.2:1.5")
    ids = write_ids(tmp_path / "ids.csv", range(1, 81))
    out = tmp_path / "out"
    result = run_cli(["run", str(ids), "--out", str(out), *api_args(sim)], sim.token)
    assert result.exit_code == 0, result.stderr
    _assert_every_file_exact(sim, out, 80)
    stats = sim.stats()
    assert stats["requests"]["GET datarequest"] > 80  # some checks really met the placeholder


# ------------------------------------------------------------------ overload as 503/504


@pytest.mark.parametrize("style", ["503-html", "504-html"])
def test_load_balancer_overload_slows_the_client_down(
    simulator: StartSimulator, tmp_path: Path, style: str
) -> None:
    """A platform that sheds load as 503/504 HTML above 20 req/s: ≤ 5 % overload answers, all done."""
    sim = simulator(rate_limit=20, burst=5, throttle_style=style, prepare_delay="0.1:0.5")
    ids = write_ids(tmp_path / "ids.csv", range(1, 161))
    out = tmp_path / "out"
    result = run_cli(["run", str(ids), "--out", str(out), *api_args(sim), "--json"], sim.token)
    assert result.exit_code == 0, result.stderr
    _assert_every_file_exact(sim, out, 160)
    summary = json.loads(result.stdout)
    responses = summary["responses"]
    overloads = responses.get(style[:3], 0)
    total = sum(responses.values())
    assert overloads > 0  # the platform really pushed back
    assert overloads <= 0.05 * total, (overloads, total)
    assert summary["overloaded"] == overloads


# ------------------------------------------------------------------------- outages


def test_an_unreachable_api_stops_the_run_at_once_with_the_reason(tmp_path: Path) -> None:
    """Connection refused before any answer: exit 2 within 30 s, one line naming host and reason."""
    ids = write_ids(tmp_path / "ids.csv", range(1, 301))
    for extra in ([], ["--log-format", "json", "-q"]):
        out = tmp_path / f"out{len(extra)}"
        started = time.monotonic()
        result = run_subprocess(
            ["run", str(ids), "--out", str(out), "--api-url", "http://127.0.0.1:1", *extra],
            "token-x",
            timeout=60,
        )
        assert time.monotonic() - started < 30
        assert result.returncode == 2, result.stderr
        assert "cannot reach 127.0.0.1:1: connection refused" in result.stderr
        assert "Traceback" not in result.stderr
        entries = read_manifest(out)
        assert not [e for e in entries if e["status"] == "failed"]  # nothing blamed on a target


async def test_a_connect_that_hangs_is_an_outage_not_a_failed_target(tmp_path: Path) -> None:
    """A host whose accept queue is full (connects hang): OutageError 'connecting timed out', nothing failed."""
    import socket

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    port = server.getsockname()[1]
    fillers = []
    try:
        for _ in range(8):  # fill the accept queue; later SYNs are dropped
            filler = socket.socket()
            filler.setblocking(False)
            filler.connect_ex(("127.0.0.1", port))
            fillers.append(filler)
        csv = write_ids(tmp_path / "ids.csv", range(1, 4))
        options = RunOptions(
            input=str(csv),
            out_dir=tmp_path / "out",
            api=ApiSettings(
                api_url=f"http://127.0.0.1:{port}",
                token=Secret("token-x"),
                connect_timeout=0.5,
                startup_timeout=2.0,
            ),
            retry=RetryPolicy(instant=True),
            handle_signals=False,
        )
        started = time.monotonic()
        with pytest.raises(OutageError, match="connecting timed out"):
            await asyncio.wait_for(run_export(options), 30)
        assert time.monotonic() - started < 10
        assert not [e for e in read_manifest(tmp_path / "out") if e["status"] == "failed"]
    finally:
        for filler in fillers:
            filler.close()
        server.close()


def test_a_failing_tls_handshake_is_named_as_such(
    simulator: StartSimulator, tmp_path: Path
) -> None:
    """https:// to a port that speaks plain HTTP: exit 2 with 'the TLS handshake failed', no target failed."""
    sim = simulator()
    ids = write_ids(tmp_path / "ids.csv", range(1, 6))
    out = tmp_path / "out"
    tls_url = sim.base_url.replace("http://", "https://")
    result = run_cli(["run", str(ids), "--out", str(out), "--api-url", tls_url], sim.token)
    assert result.exit_code == 2, result.stderr
    host = tls_url.removeprefix("https://")
    assert f"cannot reach {host}: the TLS handshake failed" in result.stderr
    assert not [e for e in read_manifest(out) if e["status"] == "failed"]


async def test_an_outage_mid_run_is_ridden_out(
    simulator: StartSimulator, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The port refuses for seconds mid-run: every request waits, one probes, all targets end done."""
    sim = simulator(prepare_delay="0.1:0.4")
    options = _options(sim, tmp_path, range(1, 121))
    run = asyncio.create_task(run_export(options))
    await _until(lambda: _done_lines(tmp_path / "out") >= 20, run)
    await asyncio.to_thread(_post_admin, sim, "/_sim/outage?seconds=3")
    result = await asyncio.wait_for(run, 120)
    assert result.exit_code == 0, result.summary.get("error")
    _assert_every_file_exact(sim, tmp_path / "out", 120)
    assert result.summary["outages"] >= 1
    messages = [r.getMessage() for r in caplog.records]
    assert any("cannot reach" in m and "probing" in m for m in messages)
    assert any("reachable again" in m for m in messages)


async def test_an_outage_past_the_limit_stops_resumably(
    simulator: StartSimulator, tmp_path: Path
) -> None:
    """An outage longer than --outage-timeout stops the run (OutageError); a rerun finishes it."""
    sim = simulator(prepare_delay="0.1:0.4")
    options = _options(sim, tmp_path, range(1, 81), outage_timeout=1.5)
    run = asyncio.create_task(run_export(options))
    await _until(lambda: _done_lines(tmp_path / "out") >= 10, run)
    await asyncio.to_thread(_post_admin, sim, "/_sim/outage?seconds=6")
    with pytest.raises(OutageError, match=r"cannot reach 127\.0\.0\.1:\d+: connection refused"):
        await asyncio.wait_for(run, 60)
    entries = read_manifest(tmp_path / "out")
    assert not [e for e in entries if e["status"] == "failed"]
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["error"]
    deadline = time.monotonic() + 30
    while not _serving(sim):
        assert time.monotonic() < deadline
        await asyncio.sleep(0.1)
    again = await asyncio.wait_for(run_export(options), 120)
    assert again.exit_code == 0
    _assert_every_file_exact(sim, tmp_path / "out", 80)


def _serving(sim: SimThread) -> bool:
    try:
        sim.get("/_sim/stats", outage_wait=0)
    except OSError:
        return False
    return True


def _done_lines(out: Path) -> int:
    try:
        return (out / "journal.jsonl").read_bytes().count(b'"ev":"done"')
    except FileNotFoundError:
        return 0


async def _until(
    condition: Callable[[], bool], task: asyncio.Task[Any], timeout: float = 60
) -> None:
    """Poll ``condition`` with a deadline, failing early if ``task`` ended first."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert not task.done(), task.result()
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


# -------------------------------------------------------------------- auth blips


def test_auth_endpoint_blips_at_refresh_do_not_end_the_run(
    simulator: StartSimulator, tmp_path: Path
) -> None:
    """v4 with short JWTs: 503, 429 and resets from the auth endpoint at refresh are ridden out."""
    sim = simulator(
        jwt_lifetime=2.0,
        auth_faults_first=3,
        auth_fault_kinds=("503", "429", "reset"),
        prepare_delay="0.3:1.0",
    )
    ids = write_ids(tmp_path / "ids.csv", range(1, 121))
    out = tmp_path / "out"
    result = run_cli(
        ["run", str(ids), "--out", str(out), *api_args(sim, version=4), "--json"],
        sim.token,
        BATCH_EXPORT_INSTANT_RETRIES="1",
    )
    assert result.exit_code == 0, result.stderr
    _assert_every_file_exact(sim, out, 120)
    summary = json.loads(result.stdout)
    assert summary["jwt_refreshes"] >= 2
    assert sim.stats()["requests"]["POST authenticate"] > summary["jwt_refreshes"]  # blips happened


def test_v4_refuses_to_send_the_token_to_a_host_the_user_did_not_name(tmp_path: Path) -> None:
    """--api-version 4 with another --api-url but the default --auth-url is refused, exit 2."""
    ids = write_ids(tmp_path / "ids.csv", [1])
    result = run_cli(
        [
            "run",
            str(ids),
            "--out",
            str(tmp_path / "out"),
            "--api-version",
            "4",
            "--api-url",
            "http://127.0.0.1:8787",
        ],
        "token-x",
    )
    assert result.exit_code == 2
    assert "--auth-url" in result.stderr and "authenticate.copernica.com" in result.stderr
    assert not (tmp_path / "out" / "journal.jsonl").exists()


def test_simulate_knows_its_own_auth_endpoint_on_v4(tmp_path: Path) -> None:
    """--simulate --api-version 4 needs no --auth-url."""
    ids = write_ids(tmp_path / "ids.csv", range(1, 11))
    result = run_cli(
        ["run", str(ids), "--out", str(tmp_path / "out"), "--simulate", "--api-version", "4"], None
    )
    assert result.exit_code == 0, result.stderr


# ------------------------------------------------------------- the lock comes first


def test_a_refused_second_run_leaves_the_first_untouched(
    simulator: StartSimulator, tmp_path: Path
) -> None:
    """Second runs started while the first streams large exports are refused; the first ends exact."""
    sim = simulator(prepare_delay="0.05:0.2", export_size=400_000)
    ids = write_ids(tmp_path / "ids.csv", range(1, 61))
    out = tmp_path / "out"
    args = ["run", str(ids), "--out", str(out), *api_args(sim), "--no-progress"]
    # --rate 10: the first run must outlast a few refused second runs; found
    # without it, its limit is reached in a second and the run ends too soon.
    first = spawn_cli([*args, "--rate", "10"], sim.token)
    assert wait_for_journal(out, 20, first)
    refused = 0
    while first.poll() is None and refused < 15:
        second = run_cli(args, sim.token)
        assert second.exit_code == 2
        assert "another batch-export run" in second.stderr
        refused += 1
    _, stderr = first.communicate(timeout=120)
    assert first.returncode == 0, stderr
    assert refused > 0
    _assert_every_file_exact(sim, out, 60)


# ---------------------------------------------------------------- a failed start


def test_a_failed_start_leaves_nothing_that_blocks_the_fix(
    simulator: StartSimulator, tmp_path: Path
) -> None:
    """A missing CSV or a wrong --kind leaves no journal; the corrected command then runs."""
    sim = simulator()
    out = tmp_path / "out"
    missing = run_cli(
        ["run", str(tmp_path / "nope.csv"), "--out", str(out), *api_args(sim)], sim.token
    )
    assert missing.exit_code == 2
    emails = tmp_path / "emails.csv"
    emails.write_text("email\na@example.com\nb@example.com\n", encoding="utf-8")
    wrong_kind = run_cli(["run", str(emails), "--out", str(out), *api_args(sim)], sim.token)
    assert wrong_kind.exit_code == 2
    assert not (out / "journal.jsonl").exists()
    fixed = run_cli(
        ["run", str(emails), "--out", str(out), "--kind", "email", *api_args(sim)], sim.token
    )
    assert fixed.exit_code == 0, fixed.stderr


# --------------------------------------------------------------- cancel-safe API


async def test_cancelling_run_export_cancels_every_target_and_writes_the_manifest(
    simulator: StartSimulator, tmp_path: Path
) -> None:
    """Cancelled from outside: CancelledError re-raised, no target task left, manifest and summary written."""
    sim = simulator(prepare_delay="0.5:2")
    options = _options(sim, tmp_path, range(1, 201))
    loop = asyncio.get_running_loop()
    unretrieved: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, context: unretrieved.append(context))
    before = set(asyncio.all_tasks())
    run = asyncio.create_task(run_export(options))
    await _until(lambda: _done_lines(tmp_path / "out") >= 5, run)
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run
    assert set(asyncio.all_tasks()) - before <= {asyncio.current_task()}
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["interrupted"] == "cancelled"
    entries = read_manifest(tmp_path / "out")
    assert len(entries) == 200
    assert not [e for e in entries if e["status"] == "failed"]
    import gc

    gc.collect()
    assert not unretrieved, unretrieved[:2]


# ------------------------------------------------------- bugs are not network errors


async def test_a_bug_while_storing_stops_the_run_instead_of_being_retried(
    simulator: StartSimulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A programming error in the consumer ends the run (InternalError, exit 70) after one try."""
    sim = simulator(prepare_delay="0")

    async def broken(self: LocalSink, *args: object) -> None:
        raise ValueError("a bug")

    monkeypatch.setattr(LocalSink, "save", broken)
    options = _options(sim, tmp_path, range(1, 6))
    with pytest.raises(InternalError, match="internal error: ValueError: a bug") as caught:
        await asyncio.wait_for(run_export(options), 60)
    assert caught.value.exit_code == 70
    served = sim.stats()["requests"]["GET datarequest"]
    assert served <= 5  # never retried
    assert (tmp_path / "out" / "manifest.jsonl").exists()


def test_an_internal_error_is_one_line_and_exit_70(
    simulator: StartSimulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The CLI shows 'internal error: … please report it', exit 70, the traceback only with -v."""
    sim = simulator(prepare_delay="0")

    async def broken(self: LocalSink, *args: object) -> None:
        raise ValueError("a bug")

    monkeypatch.setattr(LocalSink, "save", broken)
    ids = write_ids(tmp_path / "ids.csv", [1, 2])
    for verbose, traceback_shown in (([], False), (["-v"], True)):
        out = tmp_path / f"out{len(verbose)}"
        result = run_cli(["run", str(ids), "--out", str(out), *api_args(sim), *verbose], sim.token)
        assert result.exit_code == 70
        assert "internal error: ValueError: a bug" in result.stderr
        assert "please report it" in result.stderr
        assert ("Traceback" in result.stderr) is traceback_shown
        assert sim.token not in result.stderr


# ------------------------------------------------------- downloads held hostage


async def test_a_trickling_download_is_cut_and_the_run_goes_on(
    simulator: StartSimulator, tmp_path: Path
) -> None:
    """A body that trickles a byte at a time is cut by the floor; the others finish, the run ends."""
    sim = simulator(prepare_delay="0", behaviours={"3": "trickle"}, trickle_seconds=0.2)
    options = replace(
        _options(sim, tmp_path, range(1, 11), download_floor=200.0, download_window=0.5),
        retry=RetryPolicy(instant=True, max_attempts=3),
    )
    result = await asyncio.wait_for(run_export(options), 60)
    entries = {e["id"]: e for e in read_manifest(tmp_path / "out")}
    assert entries["3"]["status"] == "failed"
    assert "slower than" in entries["3"]["error"]
    assert {e["status"] for i, e in entries.items() if i != "3"} == {"done"}
    assert result.summary["cut_downloads"] == 3


# ---------------------------------------------------------------- junk 200 bodies


@pytest.mark.parametrize(
    "junk", ["junk-html", "junk-empty", "junk-truncated", "junk-error", "junk-array"]
)
def test_a_junk_200_is_asked_again_before_it_is_believed(
    simulator: StartSimulator, tmp_path: Path, junk: str
) -> None:
    """A 200 that is not an export (twice) is retried; the genuine export that follows is kept."""
    sim = simulator(prepare_delay="0", behaviours={"2": junk, "5": junk}, junk_times=2)
    ids = write_ids(tmp_path / "ids.csv", range(1, 8))
    out = tmp_path / "out"
    result = run_cli(
        ["run", str(ids), "--out", str(out), *api_args(sim)],
        sim.token,
        BATCH_EXPORT_INSTANT_RETRIES="1",
    )
    assert result.exit_code == 0, result.stderr
    _assert_every_file_exact(sim, out, 7)


def test_junk_that_never_ends_and_another_targets_export_fail_the_target(
    simulator: StartSimulator, tmp_path: Path
) -> None:
    """Junk forever fails after the retries; a well-formed export of another target fails at once."""
    sim = simulator(
        prepare_delay="0", behaviours={"2": "junk-html", "4": "wrong-id"}, junk_times=-1
    )
    ids = write_ids(tmp_path / "ids.csv", range(1, 6))
    out = tmp_path / "out"
    result = run_cli(
        ["run", str(ids), "--out", str(out), *api_args(sim)],
        sim.token,
        BATCH_EXPORT_INSTANT_RETRIES="1",
    )
    assert result.exit_code == 1
    entries = {e["id"]: e for e in read_manifest(out)}
    assert entries["2"]["status"] == "failed" and "not an export" in entries["2"]["error"]
    assert entries["4"]["status"] == "failed" and "does not match" in entries["4"]["error"]
    log = sim.get("/_sim/log")
    gets = [entry for entry in log if entry[2] == "GET datarequest"]
    assert len(gets) >= 5 + 7  # target 2 was asked again and again
    assert {e["status"] for i, e in entries.items() if i not in ("2", "4")} == {"done"}


# ---------------------------------------------------------------------- the mixed wire


def test_a_whole_export_against_the_mixed_wire_is_exact(
    simulator: StartSimulator, tmp_path: Path
) -> None:
    """Every documented and observed variant at random: every target done, every file exact."""
    sim = simulator(
        wire="mixed",
        prepare_delay="1:4",
        rate_limit=60,
        burst=10,
        outage_every=6.0,
        outage_seconds=1.5,
        seed=11,
    )
    ids = write_ids(tmp_path / "ids.csv", range(1, 201))
    out = tmp_path / "out"
    # A small window, so checks are not queued behind hundreds of POSTs and
    # some really meet the placeholder.
    result = run_cli(
        [
            "run",
            str(ids),
            "--out",
            str(out),
            *api_args(sim, version=4),
            "--json",
            "--max-pending",
            "40",
        ],
        sim.token,
    )
    assert result.exit_code == 0, result.stderr
    _assert_every_file_exact(sim, out, 200)
    played = sim.stats()["wire"]
    met = {name for name, count in played.items() if count}
    assert met & {"placeholder-bare", "placeholder-info"}, played
    assert {"post-200", "rid-x-location", "rid-location", "rid-json-body", "rid-text-body"} <= met
    assert "outage" in met and "empty-reply" in met
    assert any(name.startswith("throttle-") for name in met), played


def test_sigterm_during_an_outage_stops_cleanly(simulator: StartSimulator, tmp_path: Path) -> None:
    """SIGTERM while every request is held by an outage: exit 143, nothing failed, resumable."""
    sim = simulator(prepare_delay="0.2:0.5")
    ids = write_ids(tmp_path / "ids.csv", range(1, 101))
    out = tmp_path / "out"
    log = tmp_path / "stderr.txt"
    args = ["run", str(ids), "--out", str(out), *api_args(sim), "--no-progress"]
    with log.open("w") as stderr:
        proc = spawn_cli(args, sim.token, stdout=subprocess.DEVNULL, stderr=stderr)
        try:
            assert wait_for_journal(out, 30, proc)
            _post_admin(sim, "/_sim/outage?seconds=20")
            deadline = time.monotonic() + 20
            while "cannot reach" not in log.read_text():
                assert time.monotonic() < deadline and proc.poll() is None, log.read_text()
                time.sleep(0.05)
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
    text = log.read_text()
    assert proc.returncode == 143, text
    assert "Traceback" not in text
    assert not [e for e in read_manifest(out) if e["status"] == "failed"]
