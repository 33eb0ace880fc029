"""Push mode: the platform delivers exports to us; polling is only the fallback."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import aiohttp

from batch_export.input.ids import Target, TargetKind
from batch_export.platform.push import PushReceiver, peek_info, wait_for_push
from batch_export.storage.local import LocalSink, prepare_out_dir

from .conftest import StartSimulator, api_args, read_manifest, run_cli, write_ids
from .test_run import assert_files_verify


def test_push_mode_needs_about_one_request_per_export(
    simulator: StartSimulator, tmp_path: Path
) -> None:
    """With pushes arriving, each export costs one request (the submit) and nothing is polled."""
    sim = simulator(prepare_delay="0.1:0.4")
    out = tmp_path / "out"
    ids = write_ids(tmp_path / "ids.csv", range(1, 101))
    result = run_cli(
        [
            "run",
            str(ids),
            "--out",
            str(out),
            *api_args(sim),
            "--push-listen",
            "127.0.0.1:0",
            "--push-grace",
            "30",
        ],
        sim.token,
    )
    assert result.exit_code == 0, result.stderr
    entries = read_manifest(out)
    assert {e["status"] for e in entries} == {"done"}
    assert_files_verify(out, entries)
    stats = sim.stats()
    assert stats["webhooks"]["sent"] == 100
    assert stats["requests"].get("GET datarequest", 0) == 0
    assert stats["requests_total"] / 100 <= 1.05


def test_push_falls_back_to_polling_when_nothing_arrives(
    simulator: StartSimulator, tmp_path: Path
) -> None:
    """If deliveries never reach us (wrong public URL), every target is polled after the grace period."""
    sim = simulator(prepare_delay="0.05:0.2")
    out = tmp_path / "out"
    ids = write_ids(tmp_path / "ids.csv", range(1, 21))
    result = run_cli(
        [
            "run",
            str(ids),
            "--out",
            str(out),
            *api_args(sim),
            "--push-listen",
            "127.0.0.1:0",
            "--push-url",
            "http://127.0.0.1:9/nowhere",
            "--push-grace",
            "0.5",
        ],
        sim.token,
    )
    assert result.exit_code == 0, result.stderr
    assert {e["status"] for e in read_manifest(out)} == {"done"}
    assert sim.stats()["requests"]["GET datarequest"] >= 20


def test_push_and_report_are_exclusive(tmp_path: Path) -> None:
    """--push-listen with --report is refused: both would set the platform's report address."""
    ids = write_ids(tmp_path / "ids.csv", [1])
    result = run_cli(
        [
            "run",
            str(ids),
            "--out",
            str(tmp_path / "o"),
            "--push-listen",
            "127.0.0.1:0",
            "--report",
            "a@b.nl",
        ],
        "tok",
    )
    assert result.exit_code == 2
    assert "--report" in result.stderr


def test_peek_info_reads_the_head_of_an_export() -> None:
    """info.type and info.id are found in the first bytes, and nothing is claimed from junk."""
    assert peek_info(b'{"info": {"type": "profile", "id": 12}, "data": [[') == ("profile", "12")
    assert peek_info(b"<html>nope</html>") is None
    assert peek_info(b'{"data": "Data not available (yet)"}') is None


async def test_receiver_accepts_only_expected_exports(tmp_path: Path) -> None:
    """Wrong path → 404; unexpected target → 409; a forged export → 422; the expected one is saved."""
    out = prepare_out_dir(tmp_path / "out")
    store = LocalSink(out)
    target = Target(TargetKind.PROFILE, "12")
    good = json.dumps({"info": {"type": "profile", "id": 12}, "data": [[{"open": 1}]]}).encode()
    forged = json.dumps({"info": {"type": "profile", "id": 99}, "data": []}).encode()
    async with PushReceiver(
        store, TargetKind.PROFILE, host="127.0.0.1", port=0, public_url=None
    ) as receiver:
        url = receiver.report_url
        async with aiohttp.ClientSession() as session:
            async with session.post(url.rsplit("/", 1)[0] + "/guess", data=good) as resp:
                assert resp.status == 404
            async with session.post(url, data=good) as resp:
                assert resp.status == 409  # nobody is waiting for it yet
            delivered = receiver.expect(target, "dr_1")
            async with session.post(url, data=forged, headers={"X-Datarequest-Id": "dr_1"}) as resp:
                assert resp.status == 422
            assert delivered.done() and delivered.exception() is not None
            delivered = receiver.expect(target, "dr_1")
            async with session.post(url, data=good) as resp:  # identified by its info alone
                assert resp.status == 204

            saved = await wait_for_push(delivered, 5, asyncio.Event())
    assert saved is not None
    assert (out / saved.file).read_bytes() == good
    assert (
        receiver.received == 1 and receiver.rejected == 2
    )  # the 404 is refused before anything is read
