"""What every export destination must do: the ``Sink`` conformance suite.

Each test runs against every destination of the ``destination`` fixture,
with gzip on and off: the local files under ``DIR/exports/``, and objects in
a real S3 server (SeaweedFS on 127.0.0.1, ``tests/seaweed.py``) with a small
part size so that large bodies become multipart uploads. Real storage only,
no mocks; the crash case kills a real child process with SIGKILL while it
streams.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import hashlib
import os
import random
import signal
import subprocess
import sys
import textwrap
import uuid
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import pytest

from batch_export.errors import IntegrityError
from batch_export.input.ids import Target, TargetKind
from batch_export.storage.local import LocalSink, prepare_out_dir
from batch_export.storage.naming import export_relname
from batch_export.storage.s3 import S3Sink
from batch_export.storage.s3_settings import S3Location, S3Settings
from batch_export.storage.sink import SavedExport, Sink, UnsafeName

from .seaweed import Seaweed

REPO = Path(__file__).resolve().parent.parent
CHUNK = 64 * 1024
#: larger than any sink's buffer (the S3 part, even gzip-compressed): bytes reach storage mid-stream
LARGE = 16 * 1024 * 1024


@dataclass(frozen=True)
class Destination:
    """One destination under test, and what the suite needs to look at it from outside."""

    name: str
    gzip: bool
    #: a new sink over the same storage (what a resumed run, or another process, gets)
    make: Callable[[], Sink]
    #: every name the storage holds, finished or not (temporaries, uploads in progress)
    listing: Callable[[], set[str]]
    #: Python source that defines ``make_sink()`` in a child process
    child_setup: str


def _local(root: Path, use_gzip: bool) -> Destination:
    prepare_out_dir(root)

    def listing() -> set[str]:
        return {p.relative_to(root).as_posix() for p in root.rglob("*") if not p.is_dir()}

    setup = f"""
        from pathlib import Path
        from batch_export.storage.local import LocalSink

        def make_sink():
            return LocalSink(Path({str(root)!r}), gzip={use_gzip!r})
    """
    return Destination(
        "local", use_gzip, lambda: LocalSink(root, gzip=use_gzip), listing, textwrap.dedent(setup)
    )


S3_BUCKET = "conformance"
#: the smallest part S3 allows, so the large bodies here are multipart uploads of several parts
S3_PART = 5 * 1024 * 1024


def _s3(server: Seaweed, use_gzip: bool) -> Destination:
    client = server.client()
    with contextlib.suppress(
        client.exceptions.BucketAlreadyOwnedByYou, client.exceptions.BucketAlreadyExists
    ):
        client.create_bucket(Bucket=S3_BUCKET)
    prefix = f"run-{uuid.uuid4().hex[:12]}"
    settings = S3Settings(
        S3Location(S3_BUCKET, prefix), endpoint_url=server.endpoint, part_size=S3_PART, retry_for=30
    )

    def listing() -> set[str]:
        names = set()
        for page in client.get_paginator("list_objects_v2").paginate(
            Bucket=S3_BUCKET, Prefix=prefix + "/"
        ):
            names |= {item["Key"][len(prefix) + 1 :] for item in page.get("Contents", [])}
        uploads = client.list_multipart_uploads(Bucket=S3_BUCKET, Prefix=prefix + "/")
        names |= {"upload:" + item["Key"][len(prefix) + 1 :] for item in uploads.get("Uploads", [])}
        return names

    setup = f"""
        from batch_export.storage.s3 import S3Sink
        from batch_export.storage.s3_settings import S3Location, S3Settings

        def make_sink():
            settings = S3Settings(
                S3Location({S3_BUCKET!r}, {prefix!r}), endpoint_url={server.endpoint!r},
                part_size={S3_PART}, retry_for=30,
            )
            return S3Sink(settings, gzip={use_gzip!r})
    """
    return Destination(
        "s3", use_gzip, lambda: S3Sink(settings, gzip=use_gzip), listing, textwrap.dedent(setup)
    )


@pytest.fixture(
    params=[("local", False), ("local", True), ("s3", False), ("s3", True)],
    ids=["local-plain", "local-gzip", "s3-plain", "s3-gzip"],
)
def destination(request: pytest.FixtureRequest, tmp_path: Path) -> Destination:
    """Every destination, with gzip off and on."""
    name, use_gzip = request.param
    if name == "s3":
        return _s3(request.getfixturevalue("s3_env"), use_gzip)
    return _local(tmp_path / "out", use_gzip)


@pytest.fixture
async def sink(destination: Destination) -> AsyncIterator[Sink]:
    """A sink of the destination under test, recovered as a run starts, closed afterwards."""
    made = destination.make()
    await made.recover()
    yield made
    await made.close()


def export_body(target: Target, size: int, seed: int = 0) -> bytes:
    """A valid export of ``target`` of about ``size`` bytes (hex rows, so gzip cannot erase it)."""
    rng = random.Random(f"{target.key}/{seed}")
    rows = []
    total = 0
    while total < size:
        row = f'["message", "{rng.randbytes(400).hex()}"]'
        rows.append(row)
        total += len(row) + 1
    head = f'{{"info": {{"type": "{target.kind.value}", "id": "{target.id}"}}, "data": ['
    return (head + ",".join(rows) + "]}").encode()


def chunks_of(body: bytes, size: int = CHUNK) -> list[bytes]:
    return [body[i : i + size] for i in range(0, len(body), size)]


async def aiter_of(chunks: Iterable[bytes]) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk


async def stored_bytes(sink: Sink, file: str) -> bytes:
    return b"".join([chunk async for chunk in sink.read(file)])


def plain(sink: Sink, stored: bytes) -> bytes:
    """The export as delivered, from the bytes the sink stored."""
    return gzip.decompress(stored) if sink.gzip else stored


async def assert_exact(sink: Sink, saved: SavedExport, target: Target, body: bytes) -> None:
    """``saved`` describes the stored bytes exactly, and they are ``body`` (compressed if gzip)."""
    stored = await stored_bytes(sink, saved.file)
    assert saved.file == sink.locate(target)
    assert (saved.bytes, saved.sha256, saved.gzip) == (
        len(stored),
        hashlib.sha256(stored).hexdigest(),
        sink.gzip,
    )
    assert plain(sink, stored) == body


async def assert_absent(sink: Sink, target: Target) -> None:
    """Nothing is stored under ``target``'s final name."""
    file = sink.locate(target)
    assert not await sink.is_intact(file, 0)
    with pytest.raises(FileNotFoundError):
        await stored_bytes(sink, file)


def profile(n: int) -> Target:
    return Target(TargetKind.PROFILE, str(n))


async def test_nothing_is_visible_before_commit_and_the_bytes_are_exact_after(
    sink: Sink, destination: Destination
) -> None:
    """Atomic commit: mid-stream nothing is under the final name; after commit it is the body, byte for byte."""
    target = profile(7)
    body = export_body(target, LARGE)
    writer = sink.begin(target)
    for chunk in chunks_of(body):
        await writer.write(chunk)
    await assert_absent(sink, target)
    assert sink.locate(target) not in destination.listing()
    saved = await writer.commit()
    await sink.sync()
    await assert_exact(sink, saved, target, body)
    assert destination.listing() == {saved.file}


async def test_the_location_comes_from_the_one_naming_function(sink: Sink) -> None:
    """``locate`` is ``export_relname`` plus the sink's suffix, for every kind of target."""
    for target in (profile(12), Target(TargetKind.EMAIL, "Piet+x@example.nl")):
        located = sink.locate(target)
        assert located.startswith(export_relname(target, suffix=""))
        assert located.endswith(".json.gz" if sink.gzip else ".json")


async def test_save_stores_whole_and_streamed_bodies_exactly(
    sink: Sink, destination: Destination
) -> None:
    """``save`` of a body that arrived whole and of one that streams: both exact, nothing else kept."""
    small, large = profile(1), profile(2)
    small_body, large_body = export_body(small, 5000), export_body(large, LARGE)
    saved_small = await sink.save(small, small_body, aiter_of([]))
    parts = chunks_of(large_body)
    saved_large = await sink.save(large, parts[0], aiter_of(parts[1:]))
    await sink.sync()
    await assert_exact(sink, saved_small, small, small_body)
    await assert_exact(sink, saved_large, large, large_body)
    assert destination.listing() == {saved_small.file, saved_large.file}


async def test_discard_leaves_nothing(sink: Sink, destination: Destination) -> None:
    """A discarded export, half streamed, leaves no trace anywhere; discarding twice is harmless."""
    target = profile(8)
    writer = sink.begin(target)
    for chunk in chunks_of(export_body(target, LARGE))[:-3]:
        await writer.write(chunk)
    await writer.discard()
    await writer.discard()
    await sink.sync()
    await assert_absent(sink, target)
    assert destination.listing() == set()


_TARGET = profile(9)
_BAD_BODIES = {
    "not-json": b"<html>502 Bad Gateway</html>" + b" " * LARGE,
    "wrong-info": export_body(profile(10), LARGE),
    "wrong-kind": export_body(Target(TargetKind.SUBPROFILE, "9"), 5000),
    "placeholder": b'{"data": "Data not available (yet)"}',
    "placeholder-with-info": b'{"info": {"type": "profile", "id": 9}, "data": "not available"}',
    "cut-short": export_body(_TARGET, LARGE)[:-100],
    "no-data-array": b'{"info": {"type": "profile", "id": 9}, "data": {}}',
    "empty": b"",
}


@pytest.mark.parametrize("how", ["writer", "save-whole", "save-streamed"])
@pytest.mark.parametrize("bad", sorted(_BAD_BODIES))
async def test_a_body_that_fails_the_check_never_becomes_an_export(
    sink: Sink, destination: Destination, bad: str, how: str
) -> None:
    """Not JSON, another target's info, a placeholder, cut short: IntegrityError, and nothing kept."""
    body = _BAD_BODIES[bad]
    parts = chunks_of(body) or [b""]
    with pytest.raises(IntegrityError):
        if how == "writer":
            writer = sink.begin(_TARGET)
            for chunk in parts:
                await writer.write(chunk)
            await writer.commit()
        elif how == "save-whole":
            await sink.save(_TARGET, body, aiter_of([]))
        else:
            await sink.save(_TARGET, parts[0], aiter_of(parts[1:] or [b" "]))
    await sink.sync()
    await assert_absent(sink, _TARGET)
    assert destination.listing() == set()


async def test_a_stream_that_breaks_leaves_nothing(sink: Sink, destination: Destination) -> None:
    """The network failing mid-body: the error reaches the caller, and nothing is kept."""
    target = profile(11)
    parts = chunks_of(export_body(target, LARGE))

    async def breaking() -> AsyncIterator[bytes]:
        for chunk in parts[1:-5]:
            yield chunk
        raise ConnectionResetError("the platform hung up")

    with pytest.raises(ConnectionResetError):
        await sink.save(target, parts[0], breaking())
    await sink.sync()
    await assert_absent(sink, target)
    assert destination.listing() == set()


async def test_resume_finds_what_is_complete(sink: Sink, destination: Destination) -> None:
    """``is_intact``: true for a committed export with its size, false for another size or none."""
    target = profile(13)
    saved = await sink.save(target, export_body(target, 5000), aiter_of([]))
    await sink.sync()
    assert await sink.is_intact(saved.file, saved.bytes)
    assert not await sink.is_intact(saved.file, saved.bytes + 1)
    assert not await sink.is_intact(saved.file, saved.bytes - 1)
    assert not await sink.is_intact(sink.locate(profile(14)), saved.bytes)
    resumed = destination.make()  # the next run: a new sink, recovered under its lock
    try:
        await resumed.recover()
        assert await resumed.is_intact(saved.file, saved.bytes)
        assert await stored_bytes(resumed, saved.file) == await stored_bytes(sink, saved.file)
    finally:
        await resumed.close()


async def test_a_name_outside_the_sink_is_never_read(sink: Sink) -> None:
    """A tampered record pointing outside the sink: not intact, and ``read`` refuses it."""
    for name in ("../outside.json", "exports/../../outside.json", "/etc/passwd"):
        assert not await sink.is_intact(name, 0)
        with pytest.raises(UnsafeName):
            await stored_bytes(sink, name)


async def test_fifty_exports_stream_at_once_and_all_are_exact(
    sink: Sink, destination: Destination
) -> None:
    """50 concurrent streams, the large ones interleaved chunk by chunk, plus whole saves: all exact."""
    targets = [profile(n) for n in range(100, 150)]
    bodies = {
        t: export_body(t, 1_500_000 if n % 5 == 0 else 2_000 + 997 * n, seed=n)
        for n, t in enumerate(targets)
    }
    writers = {t: sink.begin(t) for t in targets}
    parts = {t: chunks_of(bodies[t]) for t in targets}
    for step in range(max(len(p) for p in parts.values())):
        await asyncio.gather(
            *(writers[t].write(parts[t][step]) for t in targets if step < len(parts[t]))
        )
    whole = [profile(n) for n in range(200, 220)]
    for t in whole:
        bodies[t] = export_body(t, 3_000)
    saved = await asyncio.gather(
        *(writers[t].commit() for t in targets),
        *(sink.save(t, bodies[t], aiter_of([])) for t in whole),
    )
    await sink.sync()
    for target, export in zip([*targets, *whole], saved, strict=True):
        await assert_exact(sink, export, target, bodies[target])
    assert destination.listing() == {export.file for export in saved}


_CHILD = """
import asyncio, os, sys
from batch_export.input.ids import Target, TargetKind
{setup}

async def main() -> None:
    sink = make_sink()
    await sink.recover()
    body = sys.stdin.buffer.read()
    writer = sink.begin(Target(TargetKind.PROFILE, "21"))
    for i in range(0, len(body), 65536):
        await writer.write(body[i : i + 65536])
    os.write(int(sys.argv[1]), b"w")  # part of the body is written: kill me now
    await asyncio.Event().wait()

asyncio.run(main())
"""

_RECOVER = """
import asyncio
{setup}

async def main() -> None:
    sink = make_sink()
    await sink.recover()
    await sink.close()

asyncio.run(main())
"""


async def test_a_crash_mid_write_leaves_nothing_and_recover_clears_it(
    sink: Sink, destination: Destination
) -> None:
    """A writer killed by SIGKILL mid-stream leaves nothing under the final name; ``recover`` in a new process clears the rest."""
    target = profile(21)
    body = export_body(target, LARGE)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    ready, signal_fd = os.pipe()
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD.format(setup=destination.child_setup), str(signal_fd)],
        stdin=subprocess.PIPE,
        stderr=subprocess.PIPE,
        pass_fds=(signal_fd,),
        env=env,
    )
    os.close(signal_fd)
    try:
        assert child.stdin is not None
        child.stdin.write(body[: 4 * LARGE // 5])  # the rest never comes
        child.stdin.close()
        signalled = await asyncio.to_thread(os.read, ready, 1)
        assert signalled == b"w", child.communicate(timeout=30)[1].decode()
        child.send_signal(signal.SIGKILL)
        assert child.wait(timeout=30) == -signal.SIGKILL
    finally:
        os.close(ready)
        if child.poll() is None:
            child.kill()
            child.wait()
        if child.stderr is not None:
            child.stderr.close()
    await assert_absent(sink, target)
    leftovers = destination.listing()
    assert leftovers and sink.locate(target) not in leftovers  # half-written, not final
    recovery = subprocess.run(
        [sys.executable, "-c", _RECOVER.format(setup=destination.child_setup)],
        env=env,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert recovery.returncode == 0, recovery.stderr.decode()
    assert destination.listing() == set()
    await assert_absent(sink, target)
