"""Push conflicts: deliveries that differ never replace each other; the platform settles them."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import re
from gzip import decompress as gunzip
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from batch_export.evidence.journal import SUBMITTED, Journal
from batch_export.input.ids import Target, TargetKind
from batch_export.platform.push import PushConflict, PushReceiver
from batch_export.platform.settings import ApiSettings
from batch_export.redaction import Secret
from batch_export.run.options import RunOptions
from batch_export.run.orchestrate import _plan, run_export
from batch_export.storage.local import LocalSink, prepare_out_dir

from .conftest import SimThread, StartSimulator, read_manifest, write_ids
from .simulator_helpers import PostRelay

FORGED = json.dumps({"info": {"type": "profile", "id": 1}, "data": [[{"forged": True}]]}).encode()


def _sha(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def _journal(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (out / "journal.jsonl").read_text().splitlines()[1:]]


class ForgingProxy(PostRelay):
    """The ``--push-url``: relays the platform's deliveries to the listener, plus a forgery.

    For target 1 it sends two deliveries to the real report URL (same secret
    path, same request ID header), in the order the test asks for; target 2's
    delivery is held until target 1's two have been answered, so the run is
    still listening for both.
    """

    def __init__(self, caplog: pytest.LogCaptureFixture, deliveries: str) -> None:
        self._caplog = caplog
        self._deliveries = deliveries  # "forged,genuine", "genuine,forged" or "genuine,genuine"
        self.settled = asyncio.Event()
        self.genuine: bytes | None = None
        self.rid = ""
        self.statuses: list[int] = []

    def _listener(self) -> str:
        """The listener's address, from the run's own log line (written before any submit)."""
        for record in self._caplog.records:
            found = re.search(r"push mode: listening on (\S+)", record.getMessage())
            if found:
                return f"http://{found.group(1)}"
        raise AssertionError("the run never said where it listens")

    async def _post(self, url: str, body: bytes, rid: str) -> int:
        assert self._session is not None
        headers = {"Content-Type": "application/json", "X-Datarequest-Id": rid}
        async with self._session.post(url, data=body, headers=headers) as resp:
            return resp.status

    async def _relay(self, request: web.Request) -> web.Response:
        body = await request.read()
        rid = request.headers["X-Datarequest-Id"]
        url = self._listener() + "/" + request.path.rsplit("/", 1)[1]  # the secret path
        if str(json.loads(body)["info"]["id"]) != "1" or self.genuine is not None:
            await asyncio.wait_for(self.settled.wait(), 30)
            return web.Response(status=await self._post(url, body, rid))
        self.genuine, self.rid = body, rid
        if self._deliveries == "forged,genuine-at-close":
            self.statuses.extend(await self._genuine_while_closing(url, body, rid))
            return web.Response(status=max(self.statuses))
        bodies = {"forged": FORGED, "genuine": body}
        for name in self._deliveries.split(","):
            self.statuses.append(await self._post(url, bodies[name], rid))
        self.settled.set()
        return web.Response(status=max(self.statuses))  # the platform needs no retry

    async def _genuine_while_closing(self, url: str, body: bytes, rid: str) -> list[int]:
        """Start the genuine delivery, forge one meanwhile, and finish it while the run closes."""
        assert self._session is not None
        release = asyncio.Event()

        async def slowly() -> Any:
            yield body[:100]
            await release.wait()
            yield body[100:]

        headers = {"Content-Type": "application/json", "X-Datarequest-Id": rid}

        async def genuine() -> int:
            assert self._session is not None
            async with self._session.post(url, data=slowly(), headers=headers) as resp:
                return resp.status

        late = asyncio.create_task(genuine())
        forged = await self._post(url, FORGED, rid)  # saved: the run's only target is done
        # The run now ends and stops listening: wait until new connections are refused.
        host, port = url.split("/")[2].rsplit(":", 1)
        deadline = asyncio.get_running_loop().time() + 20
        while True:
            assert asyncio.get_running_loop().time() < deadline, "the listener never closed"
            try:
                _, writer = await asyncio.open_connection(host, int(port))
            except OSError:
                break
            writer.close()
            await writer.wait_closed()
            await asyncio.sleep(0.001)
        release.set()
        return [forged, await late]


async def _run_with_proxy(
    sim: SimThread,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    deliveries: str,
    *,
    gzip: bool = False,
    targets: list[int] | None = None,
) -> tuple[Path, ForgingProxy, int]:
    caplog.set_level(logging.INFO, logger="batch_export.run.delivery")
    out = tmp_path / "out"
    ids = write_ids(tmp_path / "ids.csv", targets or [1, 2])
    async with ForgingProxy(caplog, deliveries) as proxy:
        options = RunOptions(
            input=str(ids),
            out_dir=out,
            api=ApiSettings(
                api_url=sim.base_url, auth_url=sim.auth_url, api_version=2, token=Secret(sim.token)
            ),
            push_listen="127.0.0.1:0",
            push_public_url=proxy.url,
            push_grace=30,
            gzip=gzip,
            handle_signals=False,
        )
        result = await asyncio.wait_for(run_export(options), 60)
    return out, proxy, result.exit_code


@pytest.mark.parametrize(
    ("deliveries", "gzip"),
    [("forged,genuine", False), ("genuine,forged", False), ("forged,genuine", True)],
    ids=["forged-first", "genuine-first", "forged-first-gzip"],
)
async def test_a_forged_delivery_loses_to_the_platforms_own_export(
    simulator: StartSimulator,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    deliveries: str,
    gzip: bool,
) -> None:
    """Forged and genuine deliveries in either order: the file is the platform's, both digests journalled."""
    sim = simulator(prepare_delay="0.2")
    out, proxy, exit_code = await _run_with_proxy(sim, tmp_path, caplog, deliveries, gzip=gzip)
    assert exit_code == 0
    assert proxy.genuine is not None
    assert proxy.statuses == [204, 202]  # the second is acknowledged, not thrown away
    truth = await asyncio.to_thread(sim.get, f"/_sim/datarequest/{proxy.rid}")
    assert truth["sha256"] == _sha(proxy.genuine)

    entry = next(e for e in read_manifest(out) if e["id"] == "1")
    stored = (out / entry["file"]).read_bytes()
    assert entry["status"] == "done" and entry["sha256"] == _sha(stored)
    assert (gunzip(stored) if gzip else stored) == proxy.genuine

    lines = [line for line in _journal(out) if line.get("id") == "1"]
    conflicts = [line for line in lines if line["ev"] == "push-conflict"]
    first, second = (
        (FORGED, proxy.genuine) if deliveries == "forged,genuine" else (proxy.genuine, FORGED)
    )
    assert [(c["rid"], c["first"], c["second"]) for c in conflicts] == [
        (proxy.rid, _sha(first), _sha(second))
    ]
    done = [line for line in lines if line["ev"] == "done"]
    assert done[-1]["sha256"] == _sha(stored)  # the fetched file's, as stored
    assert lines.index(conflicts[0]) > lines.index(done[0])  # after the first delivery's line
    assert sim.stats()["requests"].get("GET datarequest", 0) == 1  # one fetch: target 1's
    assert not any((out / ".partial").iterdir())


async def test_a_conflict_arriving_as_the_run_ends_is_still_settled(
    simulator: StartSimulator, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The genuine delivery still streaming when the last target is done: the run waits and fetches."""
    # Every API answer takes 0.5 s: the re-fetch is still under way when the
    # receiver has closed, and the run must not close its client under it.
    sim = simulator(prepare_delay="0.2", fault_rate=1.0, fault_kinds=("slow",), slow_seconds=0.5)
    out, proxy, exit_code = await _run_with_proxy(
        sim, tmp_path, caplog, "forged,genuine-at-close", targets=[1]
    )
    assert exit_code == 0
    assert proxy.statuses == [204, 202]
    entry = read_manifest(out)[0]
    assert (out / entry["file"]).read_bytes() == proxy.genuine
    events = [line["ev"] for line in _journal(out) if line.get("id") == "1"]
    assert events[-3:] == ["done", "push-conflict", "done"]
    assert sim.stats()["requests"].get("GET datarequest", 0) == 1


async def test_an_identical_repeat_delivery_is_acknowledged_and_changes_nothing(
    simulator: StartSimulator, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The same export delivered twice: both answered 2xx, no conflict, nothing fetched."""
    sim = simulator(prepare_delay="0.2")
    out, proxy, exit_code = await _run_with_proxy(sim, tmp_path, caplog, "genuine,genuine")
    assert exit_code == 0
    assert proxy.statuses == [204, 204]
    assert not [line for line in _journal(out) if line["ev"] == "push-conflict"]
    entry = next(e for e in read_manifest(out) if e["id"] == "1")
    assert (out / entry["file"]).read_bytes() == proxy.genuine
    assert sim.stats()["requests"].get("GET datarequest", 0) == 0


GOOD = json.dumps({"info": {"type": "profile", "id": 12}, "data": [[{"open": 1}]]}).encode()
OTHER = json.dumps({"info": {"type": "profile", "id": 12}, "data": [[{"open": 2}]]}).encode()
BROKEN = json.dumps({"info": {"type": "profile", "id": 12}, "data": {"no": "array"}}).encode()


class _Conflicts(list[PushConflict]):
    async def __call__(self, conflict: PushConflict) -> None:
        self.append(conflict)


def _loopback_receiver(store: LocalSink, conflicts: _Conflicts) -> PushReceiver:
    """A profile receiver on a free loopback port that reports conflicts to ``conflicts``."""
    return PushReceiver(
        store,
        TargetKind.PROFILE,
        host="127.0.0.1",
        port=0,
        public_url=None,
        on_conflict=conflicts,
    )


async def _delivered(
    receiver: PushReceiver, session: aiohttp.ClientSession, target: Target, body: bytes
) -> None:
    """Deliver ``body`` as the target's first export and let the pipeline take it."""
    future = receiver.expect(target, "dr_1")
    async with session.post(receiver.report_url, data=body) as resp:
        assert resp.status == 204
    assert future.done() and future.exception() is None
    receiver.forget(target.id)


@pytest.mark.parametrize("gzip", [False, True], ids=["plain", "gzip"])
async def test_receiver_acknowledges_a_repeat_without_touching_the_file(
    tmp_path: Path, gzip: bool
) -> None:
    """A second identical delivery gets 204; the file keeps its inode and mtime; no conflict."""
    out = prepare_out_dir(tmp_path / "out")
    store = LocalSink(out, gzip=gzip)
    target = Target(TargetKind.PROFILE, "12")
    conflicts = _Conflicts()
    async with (
        _loopback_receiver(store, conflicts) as receiver,
        aiohttp.ClientSession() as session,
    ):
        await _delivered(receiver, session, target, GOOD)
        before = os.stat(out / store.locate(target))
        async with session.post(receiver.report_url, data=GOOD) as resp:
            assert resp.status == 204
    after = os.stat(out / store.locate(target))
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert conflicts == [] and receiver.repeated == 1


async def test_receiver_hashes_a_differing_delivery_and_never_stores_it(tmp_path: Path) -> None:
    """A different valid export → 202 and a conflict with both sha256s; the first file stays."""
    out = prepare_out_dir(tmp_path / "out")
    store = LocalSink(out)
    target = Target(TargetKind.PROFILE, "12")
    conflicts = _Conflicts()
    async with (
        _loopback_receiver(store, conflicts) as receiver,
        aiohttp.ClientSession() as session,
    ):
        await _delivered(receiver, session, target, GOOD)
        async with session.post(receiver.report_url, data=BROKEN) as resp:
            assert resp.status == 422  # not an export at all: no conflict for junk
        async with session.post(receiver.report_url, data=OTHER) as resp:
            assert resp.status == 202
        assert (out / store.locate(target)).read_bytes() == GOOD
        assert not any((out / ".partial").iterdir())
        assert [(c.target.id, c.request_id, c.first, c.second) for c in conflicts] == [
            ("12", "dr_1", _sha(GOOD), _sha(OTHER))
        ]
        third = GOOD.replace(b"1}", b"3}")
        async with session.post(receiver.report_url, data=third) as resp:
            assert resp.status == 409  # one fetch per target at most: refused, not stored
        receiver.settle("12", _sha(OTHER))  # what the pipeline does once it fetched OTHER
        async with session.post(receiver.report_url, data=OTHER) as resp:
            assert resp.status == 204  # now the same as the file: a repeat
    assert len(conflicts) == 1
    assert (out / store.locate(target)).read_bytes() == GOOD  # the pipeline rewrites it


async def test_a_delivery_racing_the_first_waits_until_the_pipeline_took_it(tmp_path: Path) -> None:
    """A second delivery before the first is taken is held, so its conflict follows the first's done line."""
    out = prepare_out_dir(tmp_path / "out")
    store = LocalSink(out)
    target = Target(TargetKind.PROFILE, "12")
    conflicts = _Conflicts()
    async with (
        _loopback_receiver(store, conflicts) as receiver,
        aiohttp.ClientSession() as session,
    ):
        future = receiver.expect(target, "dr_1")
        async with session.post(receiver.report_url, data=GOOD) as resp:
            assert resp.status == 204
        assert future.done()

        async def second() -> int:
            async with session.post(receiver.report_url, data=OTHER) as resp:
                return resp.status

        racing = asyncio.create_task(second())
        deadline = asyncio.get_running_loop().time() + 10
        while receiver.held == 0:
            assert asyncio.get_running_loop().time() < deadline, "the delivery was not held"
            await asyncio.sleep(0.001)
        assert conflicts == [] and not racing.done()
        receiver.forget(target.id)  # the pipeline took the first delivery
        assert await asyncio.wait_for(racing, 10) == 202
    assert [c.second for c in conflicts] == [_sha(OTHER)]


async def test_a_conflict_left_unsettled_is_polled_by_the_next_run(tmp_path: Path) -> None:
    """A push-conflict line after done reopens the target with its request ID: resume polls it."""
    out = prepare_out_dir(tmp_path / "out")
    journal = Journal.open(out, "profile")
    journal.note("submitted", "12", rid="dr_1")
    journal.note("done", "12", rid="dr_1", file="f", bytes=len(GOOD), sha256=_sha(GOOD))
    await journal.record("push-conflict", "12", rid="dr_1", first=_sha(GOOD), second=_sha(OTHER))
    await journal.close()  # the run ended before the platform's copy was fetched
    again = Journal.open(out, "profile")
    await again.close()
    assert again.damaged_count == 0
    assert again.states["12"].status == SUBMITTED and again.states["12"].request_id == "dr_1"
    again.state("12").in_input = True  # what reading an input naming it does
    work, resumed, _, todo = await _plan(again, LocalSink(out))
    assert list(work) == ["12"] and resumed == {"12"} and todo == 1
