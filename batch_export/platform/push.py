"""Push mode: let the platform deliver finished exports instead of asking for them.

The platform's ``report`` parameter may be a web address, to which it POSTs
the export JSON when the file is ready. In push mode the exporter runs a
small aiohttp server, passes ``<public URL>/<secret path>`` as ``report`` on
every data request, and saves what arrives exactly like a download (through
the same ``Sink``, whichever destination it is: checked, hashed, committed
atomically). A target whose export has not arrived within ``grace`` seconds falls
back to polling, so a lost delivery costs time, never data.

Security model:
- the path holds 256 random bits, fresh for every run, and is never logged;
  any other path gets 404 and nothing is read;
- a delivery is accepted only for a target this run is waiting on, identified
  by the request ID header (``X-Datarequest-Id``) or, failing that, by the
  export's own ``info``; anything else gets 404 or 409 without being stored;
- a signed delivery proves its origin before its body is read, and the body
  its signed Digest as it streams (``push_origin.py``); one that fails is
  refused (401/403) and the target keeps waiting (unsigned ones too, if required);
- the body is checked like a download (valid JSON, matching ``info``), so a
  corrupted delivery, or one for another target, is never saved;
- deliveries never replace each other. The receiver remembers, for every
  target delivered in this run, the sha256 of what it saved (32 bytes and the
  request ID, not the body). A later delivery for that target is checked and
  hashed while it is read, and never stored: the same bytes again are
  acknowledged (204) and change nothing; different bytes are a *conflict*
  (one of the two is forged, or the platform changed its mind), answered 202
  and handed to ``on_conflict``, which fetches the export from the platform
  itself (the source of truth) and keeps that. Once a target's conflict is
  raised, any further delivery that differs from its file is refused (409),
  so an attacker cannot cause more than one fetch per target;
- it binds to loopback unless told otherwise; exposing it beyond the host
  belongs behind an HTTPS reverse proxy (the public URL says where).

A conflict is only seen while the run is listening: a forged delivery that
arrives first, for a target whose genuine delivery never comes during the run,
is indistinguishable from the genuine one. The secret path is what keeps
forgeries out in the first place.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import hmac
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web

from ..errors import ExportError, IntegrityError
from ..input.ids import Target, TargetKind
from ..storage.sink import SavedExport, Sink
from ..storage.validate import digest_checked
from .push_body import digest_chunks, peek_info, save_digesting, wait_for_push
from .push_keys import DnsKeys
from .push_origin import DigestMismatch, Origin, OriginError, OriginVerifier
from .responses import CHUNK_BYTES, PEEK_BYTES
from .transfer import read_bounded

__all__ = [
    "PushConflict",
    "PushReceiver",
    "digest_chunks",
    "peek_info",
    "save_digesting",
    "wait_for_push",
]

log = logging.getLogger("batch_export.platform.push")

RID_HEADER = "X-Datarequest-Id"
_DIGEST_BYTES = 32  # sha256


@dataclass(frozen=True)
class PushConflict:
    """Two different deliveries for one target: which, and under which request ID."""

    target: Target
    request_id: str
    #: sha256 (hex) of the body saved first, as delivered (before any --gzip)
    first: str
    #: sha256 (hex) of the later, different body, which was hashed and not stored
    second: str


#: called (and awaited) before a conflicting delivery is acknowledged
ConflictHandler = Callable[[PushConflict], Awaitable[None]]


@dataclass
class _Expected:
    target: Target
    request_id: str
    delivered: asyncio.Future[SavedExport]
    #: resolved by ``forget``: the pipeline has taken the delivery, or stopped waiting
    released: asyncio.Future[None]
    #: a first delivery has been taken for saving (later ones are only compared)
    taken: bool = False
    #: sha256 of the saved delivery as delivered, once saved
    digest: bytes | None = field(default=None, repr=False)


class PushReceiver:
    """The web endpoint that receives pushed exports for the targets of one run."""

    def __init__(
        self,
        store: Sink,
        kind: TargetKind,
        *,
        host: str,
        port: int,
        public_url: str | None,
        on_conflict: ConflictHandler | None = None,
        drain_timeout: float = 10.0,
        origin: OriginVerifier | None = None,
    ) -> None:
        self._store = store
        self._kind = kind
        self._host = host
        self._port = port
        self._public_url = public_url
        self._on_conflict = on_conflict
        # A signed delivery is always checked: by default against the keys in public DNS.
        self._origin = origin if origin is not None else OriginVerifier(DnsKeys())
        #: what the platform signs as ``(request-target)`` and ``host``: the report URL's
        self._signed_target = ""
        self._signed_host = ""
        self._secret = secrets.token_urlsafe(32)
        self._by_target: dict[str, _Expected] = {}
        self._by_request: dict[str, str] = {}
        #: target ID → sha256 of its file (raw bytes) + request ID (UTF-8), for
        #: every target delivered in this run: about 100 bytes each, never a body
        self._delivered: dict[str, bytes] = {}
        #: targets whose conflict was raised: their file is (or is being) fetched
        self._verifying: set[str] = set()
        #: later deliveries waiting for their target's first one to be taken
        self._held = 0
        #: deliveries being handled, and an event set whenever there are none
        self._active = 0
        self._idle = asyncio.Event()
        self._drain_timeout = drain_timeout
        self._runner: web.AppRunner | None = None
        self.report_url = ""
        self.address = ""
        self.received = 0
        #: of ``received``, those whose signature was verified
        self.verified = 0
        self.rejected = 0
        self.repeated = 0
        self.conflicts = 0

    async def __aenter__(self) -> PushReceiver:
        app = web.Application(client_max_size=0)
        app.router.add_post("/{secret}", self._receive)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port)
        await site.start()
        addresses = self._runner.addresses  # tells the real port when asked for port 0
        port = int(addresses[0][1]) if addresses else self._port
        host = f"[{self._host}]" if ":" in self._host else self._host
        base = (self._public_url or f"http://{host}:{port}").rstrip("/")
        self.report_url = f"{base}/{self._secret}"
        self.address = f"{host}:{port}"
        public = urlsplit(self.report_url)
        query = f"?{public.query}" if public.query else ""
        self._signed_target = f"post {public.path or '/'}{query}"
        self._signed_host = public.netloc.rpartition("@")[2]
        if self._public_url is None and self._host in ("0.0.0.0", "::"):  # noqa: S104 - detecting it
            log.warning(
                "push mode listens on all interfaces but --push-url is not set: "
                "the platform cannot reach %s; give the public URL",
                self.address,
            )
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Stop listening; deliveries being received finish first (idempotent).

        aiohttp's own shutdown stops reading request bodies, which would cut
        a delivery still streaming in (perhaps the genuine half of a
        conflict). So new connections are refused first, then deliveries in
        progress get up to ``drain_timeout`` seconds to finish.
        """
        if self._runner is None:
            return
        runner, self._runner = self._runner, None
        for site in list(runner.sites):
            await site.stop()
        for target_id in list(self._by_target):
            self.forget(target_id)  # nobody waits any more: held deliveries may go on
        if self._active:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._idle.wait(), self._drain_timeout)
        await runner.cleanup()

    def expect(self, target: Target, request_id: str) -> asyncio.Future[SavedExport]:
        """Start waiting for ``target``'s export; the future completes when it is saved."""
        self.forget(target.id)
        # A new request for the target: what an earlier one delivered is no yardstick.
        self._delivered.pop(target.id, None)
        self._verifying.discard(target.id)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[SavedExport] = loop.create_future()
        released: asyncio.Future[None] = loop.create_future()
        self._by_target[target.id] = _Expected(target, request_id, future, released)
        self._by_request[request_id] = target.id
        return future

    def forget(self, target_id: str) -> None:
        """Stop waiting for ``target_id`` (it is done, or polling takes over).

        If its delivery was saved and taken, the target's digest is kept, so
        a later delivery can be told apart from a repeat.
        """
        expected = self._by_target.pop(target_id, None)
        if expected is None:
            return
        self._by_request.pop(expected.request_id, None)
        delivered = expected.delivered
        if delivered.done() and not delivered.cancelled() and delivered.exception() is None:
            assert expected.digest is not None
            self._delivered[target_id] = expected.digest + expected.request_id.encode()
        elif not delivered.done():
            delivered.cancel()
        if not expected.released.done():
            expected.released.set_result(None)

    def settle(self, target_id: str, sha256: str) -> None:
        """After a conflict: the target's file is now the platform's, with this sha256."""
        packed = self._delivered.get(target_id)
        if packed is not None:
            self._delivered[target_id] = bytes.fromhex(sha256) + packed[_DIGEST_BYTES:]

    async def _receive(self, request: web.Request) -> web.Response:
        if not hmac.compare_digest(request.match_info["secret"], self._secret):
            raise web.HTTPNotFound
        self._active += 1
        self._idle.clear()
        try:
            return await self._deliver(request)
        finally:
            self._active -= 1
            if not self._active:
                self._idle.set()

    async def _deliver(self, request: web.Request) -> web.Response:
        # Before a byte of the body is read: a forgery costs us its headers only.
        try:
            origin = await self._origin.check(
                self._signed_target, self._signed_host, request.headers
            )
        except OriginError as exc:
            log.warning("push: refused a delivery: %s", exc.reason)
            return self._refuse(exc.reason, exc.status)
        head = await read_bounded(request.content, PEEK_BYTES)
        target_id = self._by_request.get(request.headers.get(RID_HEADER, ""))
        if target_id is None:
            info = peek_info(head)
            if info is not None and info[0] == self._kind.value:
                target_id = info[1]
        if not target_id:
            return self._refuse("not expecting this export")
        expected = self._by_target.get(target_id)
        if expected is not None and not expected.taken:
            expected.taken = True
            return await self._save_first(expected, origin, head, request)
        if expected is None and target_id not in self._delivered:
            return self._refuse("not expecting this export")
        return await self._compare(target_id, expected, origin, head, request)

    def _refuse(self, message: str, status: int = 409) -> web.Response:
        self.rejected += 1
        return web.json_response({"error": {"message": message}}, status=status)

    async def _save_first(
        self, expected: _Expected, origin: Origin, head: bytes, request: web.Request
    ) -> web.Response:
        """The first delivery for a waiting target: saved through the sink."""
        chunks = origin.guard(head, request.content.iter_chunked(CHUNK_BYTES))
        # With --gzip the sink hashes the compressed bytes: hash what arrived too.
        raw = hashlib.sha256(head) if self._store.gzip else None
        if raw is not None:
            chunks = digest_chunks(chunks, raw)
        try:
            saved = await self._store.save(expected.target, head, chunks)
        except DigestMismatch as exc:
            # Not the platform's body: nothing was kept, and the target waits on.
            expected.taken = False
            log.warning(
                "push: refused a delivery for %s %s: %s", self._kind.value, expected.target.id, exc
            )
            return self._refuse(str(exc), 403)
        except (ExportError, OSError, ConnectionError) as exc:
            # Not saved: let polling fetch it instead.
            log.info("push for %s %s not saved: %s", self._kind.value, expected.target.id, exc)
            if not expected.delivered.done():
                expected.delivered.set_exception(
                    exc if isinstance(exc, ExportError) else ExportError(str(exc))
                )
            return self._refuse("export rejected", 422)
        expected.digest = raw.digest() if raw is not None else bytes.fromhex(saved.sha256)
        saved = dataclasses.replace(saved, origin=origin.record)
        self.received += 1
        self.verified += origin.digest is not None
        if not expected.delivered.done():
            expected.delivered.set_result(saved)
        return web.Response(status=204)

    async def _compare(
        self,
        target_id: str,
        expected: _Expected | None,
        origin: Origin,
        head: bytes,
        request: web.Request,
    ) -> web.Response:
        """A later delivery for a delivered target: checked and hashed, never stored."""
        target = Target(self._kind, target_id)
        chunks = origin.guard(head, request.content.iter_chunked(CHUNK_BYTES))
        try:
            digest = await digest_checked(self._kind.value, target_id, head, chunks)
        except DigestMismatch as exc:
            log.warning("push: refused a delivery for %s %s: %s", self._kind.value, target_id, exc)
            return self._refuse(str(exc), 403)
        except IntegrityError as exc:
            log.info("push for %s %s refused: %s", self._kind.value, target_id, exc)
            return self._refuse("export rejected", 422)
        except (OSError, aiohttp.ClientError):
            return self._refuse("the delivery was cut short", 400)
        if expected is not None:
            # The first delivery is still being saved, or not yet taken by the
            # pipeline: wait, so a conflict is only raised after its "done" line.
            self._held += 1
            try:
                await asyncio.shield(expected.released)
            finally:
                self._held -= 1
        packed = self._delivered.get(target_id)
        if packed is None:  # the first was not saved or not taken: polling fetches it
            return self._refuse("not expecting this export")
        kept, request_id = packed[:_DIGEST_BYTES], packed[_DIGEST_BYTES:].decode()
        if hmac.compare_digest(digest, kept):
            self.repeated += 1
            return web.Response(status=204)  # the same export again: nothing changes
        if target_id in self._verifying or self._on_conflict is None:
            log.warning(
                "push: refused a delivery for %s %s (sha256 %s) that differs from its saved "
                "file (sha256 %s)%s",
                self._kind.value,
                target_id,
                digest.hex(),
                kept.hex(),
                "; that file is being or was fetched from the platform"
                if target_id in self._verifying
                else "",
            )
            return self._refuse("conflicts with the export already received")
        self._verifying.add(target_id)
        conflict = PushConflict(target, request_id, kept.hex(), digest.hex())
        try:
            await self._on_conflict(conflict)
        except Exception as exc:
            self._verifying.discard(target_id)
            log.warning(
                "push: conflict for %s %s not recorded: %s", self._kind.value, target_id, exc
            )
            return self._refuse("cannot record this delivery", 503)
        self.conflicts += 1
        return web.Response(status=202)

    @property
    def held(self) -> int:
        """Later deliveries now waiting for their target's first one to be taken."""
        return self._held
