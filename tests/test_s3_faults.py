"""The S3 sink under storage faults: SlowDown, 5xx, refused connections, AccessDenied.

A small reverse proxy (aiohttp.web on 127.0.0.1) stands between the sink
and a real SeaweedFS. It forwards every request unchanged (method, path,
query, body, every header including Host, which SigV4 signs) and relays the
answer, unless told to misbehave: answer matching requests with S3's XML
errors, or go down (its listening socket closed, every connection cut) and
come back on the same port. The checks: retryable faults are retried and
the object is still byte-exact with no multipart upload left; a fault that
outlasts ``retry_for`` stops with ``ObjectStorageError`` (no secret in it)
and the next run's ``recover`` aborts what was left; AccessDenied stops at
once. A real proxy over real HTTP, not mocks of aiohttp or botocore: the
faults then reach the sink the way a real server's would, through the
client's own parsing, connection pool and error mapping.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import socket
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from yarl import URL

from batch_export.input.ids import Target, TargetKind
from batch_export.storage.s3 import S3Sink
from batch_export.storage.s3_calls import ObjectStorageError
from batch_export.storage.s3_settings import MIN_PART_SIZE, S3Location, S3Settings

from .conftest import StartSimulator, api_args, journal_lines, spawn_cli, write_ids
from .seaweed import ACCESS_KEY, SECRET_KEY, Seaweed
from .test_s3_export import assert_bucket_matches_manifest
from .test_sink_conformance import aiter_of, chunks_of, export_body

BUCKET = "faults"
#: headers of one hop only (and Expect, which botocore does not sign): never forwarded
HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "te", "upgrade", "expect", "trailer"}
)
XML_ERROR = '<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code><Message>{message}</Message></Error>'
SLOW_DOWN = (503, "SlowDown", "Please reduce your request rate.")
INTERNAL = (500, "InternalError", "We encountered an internal error. Please try again.")
DENIED = (403, "AccessDenied", "Access Denied")

Match = Callable[[web.BaseRequest], bool]


@dataclass
class Fault:
    """Answer the next ``times`` requests that ``match`` with ``status`` and an S3 XML error."""

    match: Match
    status: int
    code: str
    message: str
    times: int | None  # None: every matching request, until cleared
    injected: int = 0


@dataclass
class Seen:
    """One request the proxy received: what was asked, what was answered, and whether faked."""

    method: str
    query: str
    status: int
    faked: bool
    at: float


@dataclass
class FaultProxy:
    """A reverse proxy to ``upstream`` on a fixed loopback port that can misbehave on demand."""

    upstream: str
    port: int = 0
    faults: list[Fault] = field(default_factory=list)
    seen: list[Seen] = field(default_factory=list)
    _runner: web.ServerRunner | None = None
    _session: aiohttp.ClientSession | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(auto_decompress=False)
        if not self.port:
            with socket.socket() as probe:
                probe.bind(("127.0.0.1", 0))
                self.port = probe.getsockname()[1]
        await self.up()

    async def up(self) -> None:
        """Listen (again) on the same port."""
        runner = web.ServerRunner(web.Server(self._handle), shutdown_timeout=0.2)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", self.port, reuse_address=True).start()
        self._runner = runner

    async def down(self) -> None:
        """Close the listening socket and every open connection: connections are refused."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def up_after(self, seconds: float) -> None:
        await asyncio.sleep(seconds)  # the simulated outage itself
        await self.up()

    async def close(self) -> None:
        await self.down()
        if self._session is not None:
            await self._session.close()

    def inject(self, match: Match, answer: tuple[int, str, str], times: int | None = 1) -> Fault:
        fault = Fault(match, *answer, times=times)
        self.faults.append(fault)
        return fault

    def injected(self) -> int:
        return sum(fault.injected for fault in self.faults)

    def _fault_for(self, request: web.BaseRequest) -> Fault | None:
        for fault in self.faults:
            if (fault.times is None or fault.injected < fault.times) and fault.match(request):
                fault.injected += 1
                return fault
        return None

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        if request.headers.get("Expect", "").lower() == "100-continue":
            # what aiohttp's router does, and the low-level server does not
            await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        body = await request.content.read()  # whole (request.read() stops at 1 MiB)
        now = asyncio.get_running_loop().time()
        fault = self._fault_for(request)
        if fault is not None:
            self.seen.append(Seen(request.method, request.query_string, fault.status, True, now))
            text = XML_ERROR.format(code=fault.code, message=fault.message)
            return web.Response(
                status=fault.status, body=text.encode(), content_type="application/xml"
            )
        assert self._session is not None
        headers = [(k, v) for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP]
        async with self._session.request(
            request.method,
            URL(self.upstream + request.raw_path, encoded=True),
            headers=headers,
            data=body or None,
            skip_auto_headers=("Accept", "Accept-Encoding", "User-Agent", "Content-Type"),
            allow_redirects=False,
        ) as upstream:
            payload = await upstream.read()
            answer = web.StreamResponse(status=upstream.status, reason=upstream.reason)
            for name, value in upstream.headers.items():
                if name.lower() not in HOP_BY_HOP:
                    answer.headers.add(name, value)
            await answer.prepare(request)
            if payload:
                await answer.write(payload)
            await answer.write_eof()
        self.seen.append(Seen(request.method, request.query_string, upstream.status, False, now))
        return answer


def is_part(request: web.BaseRequest) -> bool:
    return request.method == "PUT" and "partNumber" in request.query


def part_number(number: int) -> Match:
    return lambda request: is_part(request) and request.query.get("partNumber") == str(number)


def is_put_object(request: web.BaseRequest) -> bool:
    return request.method == "PUT" and "partNumber" not in request.query


def any_request(request: web.BaseRequest) -> bool:
    return True


def not_create_upload(request: web.BaseRequest) -> bool:
    return not (request.method == "POST" and "uploads" in request.query)


@pytest.fixture
async def proxy(seaweed: Seaweed) -> AsyncIterator[FaultProxy]:
    client = seaweed.client()
    with contextlib.suppress(
        client.exceptions.BucketAlreadyOwnedByYou, client.exceptions.BucketAlreadyExists
    ):
        client.create_bucket(Bucket=BUCKET)
    started = FaultProxy(seaweed.endpoint)
    await started.start()
    yield started
    await started.close()


def settings_for(proxy: FaultProxy, retry_for: float = 30.0) -> S3Settings:
    prefix = f"faults-{uuid.uuid4().hex[:12]}"
    return S3Settings(
        S3Location(BUCKET, prefix),
        endpoint_url=proxy.url,
        part_size=MIN_PART_SIZE,
        retry_for=retry_for,
    )


def stored(server: Seaweed, settings: S3Settings, file: str) -> bytes:
    answer = server.client().get_object(Bucket=BUCKET, Key=settings.location.key(file))
    data: bytes = answer["Body"].read()
    return data


def uploads_left(server: Seaweed, settings: S3Settings) -> list[str]:
    answer = server.client().list_multipart_uploads(Bucket=BUCKET, Prefix=settings.location.key(""))
    return [str(item["Key"]) for item in answer.get("Uploads", [])]


async def save(sink: S3Sink, target: Target, body: bytes) -> Any:
    chunks = chunks_of(body)
    return await sink.save(target, chunks[0], aiter_of(chunks[1:]))


async def poll(condition: Callable[[], bool], deadline: float = 30.0) -> None:
    """Wait until ``condition()`` holds, polling; AssertionError after ``deadline`` s."""
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline
    while not condition():
        assert loop.time() < end, "condition never held"
        await asyncio.sleep(0.02)


def profile(n: int) -> Target:
    return Target(TargetKind.PROFILE, str(n))


async def test_slowdown_and_internal_errors_are_retried_and_the_objects_are_exact(
    s3_env: Seaweed, proxy: FaultProxy
) -> None:
    """SlowDown on PutObject and on every UploadPart, InternalError on completion: all retried."""
    settings = settings_for(proxy)
    sink = S3Sink(settings)
    try:
        await sink.recover()
        proxy.inject(is_put_object, SLOW_DOWN, times=2)
        small_body = export_body(profile(1), 200_000)
        small = await save(sink, profile(1), small_body)
        assert proxy.injected() == 2

        large_body = export_body(profile(2), 3 * MIN_PART_SIZE + 1_000_000)  # four parts
        for number in (1, 2, 3, 4):
            proxy.inject(part_number(number), SLOW_DOWN)
        proxy.inject(lambda r: r.method == "POST" and "uploadId" in r.query, INTERNAL)
        large = await save(sink, profile(2), large_body)
        assert proxy.injected() == 2 + 4 + 1
        assert sink.stats()["s3_retries"] >= proxy.injected()
        assert sink.stats()["s3_multipart"] == 1
    finally:
        await sink.close()
    for saved, body in ((small, small_body), (large, large_body)):
        data = stored(s3_env, settings, saved.file)
        assert data == body
        assert saved.sha256 == hashlib.sha256(body).hexdigest()
    assert uploads_left(s3_env, settings) == []


async def test_connections_refused_mid_upload_then_back_on_the_same_port(
    s3_env: Seaweed, proxy: FaultProxy
) -> None:
    """The proxy goes down for 3 s after the first part arrived; the upload resumes after."""
    settings = settings_for(proxy)
    target = profile(3)
    body = export_body(target, 3 * MIN_PART_SIZE + 500_000)
    chunks = chunks_of(body)
    split = MIN_PART_SIZE // len(chunks[0]) + 1  # enough chunks to fill part 1
    port = proxy.port
    outage: list[asyncio.Task[None]] = []
    went_down: list[float] = []

    def part_one_stored() -> bool:
        return any(is_ok_part(s, 1) for s in proxy.seen)

    async def feed() -> AsyncIterator[bytes]:
        for chunk in chunks[1:split]:
            yield chunk
        await poll(part_one_stored)
        went_down.append(asyncio.get_running_loop().time())
        await proxy.down()
        outage.append(asyncio.create_task(proxy.up_after(3.0)))
        for chunk in chunks[split:]:
            yield chunk

    sink = S3Sink(settings)
    try:
        await sink.recover()
        saved = await sink.save(target, chunks[0], feed())
        retries = sink.stats()["s3_retries"]
    finally:
        await sink.close()
        for task in outage:
            await task
    assert proxy.port == port
    assert retries >= 1
    later_parts = [s for s in proxy.seen if is_ok_part(s, 2)]
    assert later_parts and later_parts[0].at >= went_down[0] + 3.0
    assert stored(s3_env, settings, saved.file) == body
    assert uploads_left(s3_env, settings) == []


def is_ok_part(seen: Seen, number: int) -> bool:
    parts = dict(item.split("=", 1) for item in seen.query.split("&") if "=" in item)
    return seen.method == "PUT" and parts.get("partNumber") == str(number) and seen.status == 200


async def test_a_fault_longer_than_retry_for_stops_and_recover_cleans_up(
    s3_env: Seaweed, proxy: FaultProxy
) -> None:
    """Every request but CreateMultipartUpload answered SlowDown for longer than retry_for."""
    settings = settings_for(proxy, retry_for=2.0)
    target = profile(4)
    body = export_body(target, 2 * MIN_PART_SIZE + 1000)
    sink = S3Sink(settings)
    try:
        await sink.recover()
        proxy.inject(not_create_upload, SLOW_DOWN, times=None)
        with pytest.raises(ObjectStorageError) as raised:
            await save(sink, target, body)
    finally:
        await sink.close()
    message = str(raised.value)
    assert raised.value.exit_code == 2
    assert "kept failing" in message and "SlowDown" in message
    assert SECRET_KEY not in message and ACCESS_KEY not in message
    # the abort was refused as well: the upload stays until the next run's recover
    assert len(uploads_left(s3_env, settings)) == 1

    proxy.faults.clear()
    again = S3Sink(settings)
    try:
        await again.recover()
        assert again.stats()["s3_aborted"] == 1
    finally:
        await again.close()
    assert uploads_left(s3_env, settings) == []


async def test_access_denied_on_put_object_stops_at_once(
    s3_env: Seaweed, proxy: FaultProxy
) -> None:
    settings = settings_for(proxy)
    target = profile(5)
    sink = S3Sink(settings)
    try:
        await sink.recover()
        proxy.inject(is_put_object, DENIED, times=None)
        with pytest.raises(ObjectStorageError) as raised:
            await save(sink, target, export_body(target, 50_000))
        assert sink.stats()["s3_retries"] == 0
    finally:
        await sink.close()
    assert proxy.injected() == 1
    message = str(raised.value)
    assert "may not put_object" in message and "AccessDenied" in message
    assert SECRET_KEY not in message and ACCESS_KEY not in message


async def test_the_preflight_retries_slowdown(s3_env: Seaweed, proxy: FaultProxy) -> None:
    sink = S3Sink(settings_for(proxy))
    proxy.inject(any_request, SLOW_DOWN, times=3)
    try:
        await sink.recover()
        stats = sink.stats()
    finally:
        await sink.close()
    assert proxy.injected() == 3
    assert stats["s3_retries"] >= 3
    assert [s.faked for s in proxy.seen[:4]] == [True, True, True, False]


async def test_a_whole_run_rides_out_object_storage_going_away_for_20_seconds(
    s3_env: Seaweed, proxy: FaultProxy, simulator: StartSimulator, tmp_path: Path
) -> None:
    """The CLI mid-run, the bucket unreachable for 20 s: every target done and exact, nothing failed."""
    sim = simulator(prepare_delay="0.2:0.6", export_size=3_000)
    prefix = f"outage-{uuid.uuid4().hex[:8]}"
    ids = write_ids(tmp_path / "ids.csv", range(1, 101))
    out = tmp_path / "state"
    args = ["run", str(ids), "--out", str(out), "--to", f"s3://{BUCKET}/{prefix}"]
    args += ["--s3-endpoint-url", proxy.url, *api_args(sim), "--rate", "20", "--no-progress"]
    proc = spawn_cli(args, sim.token, env=s3_env.env())
    try:
        deadline = time.monotonic() + 60
        while journal_lines(out) < 40 and proc.poll() is None and time.monotonic() < deadline:
            await asyncio.sleep(0.05)  # polling the journal, with a deadline
        assert proc.poll() is None, "the run ended before the outage"
        await proxy.down()
        await proxy.up_after(20)
        _, stderr = await asyncio.to_thread(proc.communicate, timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, stderr
    assert "retrying" in stderr and "Traceback" not in stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["counts"]["done"] == 100 and summary["s3_retries"] > 0
    assert_bucket_matches_manifest(s3_env, BUCKET, prefix, out)
