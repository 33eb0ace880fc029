"""Push mode: let the platform deliver finished exports instead of asking for them.

The platform's ``report`` parameter may be a web address, to which it POSTs
the export JSON when the file is ready. In push mode the exporter runs a
small aiohttp server, passes ``<public URL>/<secret path>`` as ``report`` on
every data request, and saves what arrives exactly like a download (same
streaming store: temporary file, sha256, JSON and target check, fsync,
rename). A target whose export has not arrived within ``grace`` seconds falls
back to polling, so a lost delivery costs time, never data.

Security model:
- the path holds 256 random bits, fresh for every run, and is never logged;
  any other path gets 404 and nothing is read;
- a delivery is accepted only for a target this run is waiting on, identified
  by the request ID header (``X-Datarequest-Id``) or, failing that, by the
  export's own ``info``; anything else gets 404 or 409 without being stored;
- the body is checked like a download (valid JSON, matching ``info``), so a
  forged or corrupted delivery is never saved as anyone's export;
- it binds to loopback unless told otherwise; exposing it beyond the host
  belongs behind an HTTPS reverse proxy (the public URL says where).
"""

from __future__ import annotations

import asyncio
import hmac
import io
import logging
import secrets
from dataclasses import dataclass
from typing import Any

import ijson
from aiohttp import web

from .client import read_bounded
from .errors import ExportError
from .store import ExportStore, SavedExport
from .targets import Target, TargetKind

__all__ = ["PushReceiver", "peek_info", "wait_for_push"]

log = logging.getLogger("batch_export.push")

PEEK_BYTES = 64 * 1024
RID_HEADER = "X-Datarequest-Id"


def peek_info(head: bytes) -> tuple[str, str] | None:
    """``(info.type, info.id)`` from the first bytes of an export, if they hold them."""
    found: dict[str, str] = {}
    try:
        for prefix, event, value in ijson.parse(io.BytesIO(head)):
            if prefix in ("info.type", "info.id") and event in ("string", "number"):
                found[prefix[5:]] = str(value)
                if len(found) == 2:
                    return found["type"], found["id"]
    except ijson.JSONError:
        pass  # the head ends mid-document, or is not JSON at all
    return None


@dataclass
class _Expected:
    target: Target
    request_id: str
    delivered: asyncio.Future[SavedExport]


class PushReceiver:
    """The web endpoint that receives pushed exports for the targets of one run."""

    def __init__(
        self, store: ExportStore, kind: TargetKind, *, host: str, port: int, public_url: str | None
    ) -> None:
        self._store = store
        self._kind = kind
        self._host = host
        self._port = port
        self._public_url = public_url
        self._secret = secrets.token_urlsafe(32)
        self._by_target: dict[str, _Expected] = {}
        self._by_request: dict[str, str] = {}
        self._runner: web.AppRunner | None = None
        self.report_url = ""
        self.address = ""
        self.received = 0
        self.rejected = 0

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
        if self._public_url is None and self._host in ("0.0.0.0", "::"):  # noqa: S104 - detecting it
            log.warning(
                "push mode listens on all interfaces but --push-url is not set: "
                "the platform cannot reach %s; give the public URL",
                self.address,
            )
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def expect(self, target: Target, request_id: str) -> asyncio.Future[SavedExport]:
        """Start waiting for ``target``'s export; the future completes when it is saved."""
        future: asyncio.Future[SavedExport] = asyncio.get_running_loop().create_future()
        self._by_target[target.id] = _Expected(target, request_id, future)
        self._by_request[request_id] = target.id
        return future

    def forget(self, target_id: str) -> None:
        """Stop waiting for ``target_id`` (it is done, or polling takes over)."""
        expected = self._by_target.pop(target_id, None)
        if expected is not None:
            self._by_request.pop(expected.request_id, None)
            if not expected.delivered.done():
                expected.delivered.cancel()

    async def _receive(self, request: web.Request) -> web.Response:
        if not hmac.compare_digest(request.match_info["secret"], self._secret):
            raise web.HTTPNotFound
        head = await read_bounded(request.content, PEEK_BYTES)
        target_id = self._by_request.get(request.headers.get(RID_HEADER, ""))
        if target_id is None:
            info = peek_info(head)
            if info is not None and info[0] == self._kind.value:
                target_id = info[1]
        expected = self._by_target.pop(target_id, None) if target_id else None
        if expected is None:
            self.rejected += 1
            return web.json_response(
                {"error": {"message": "not expecting this export"}}, status=409
            )
        self._by_request.pop(expected.request_id, None)
        try:
            saved = await self._store.save(
                expected.target, head, request.content.iter_chunked(256 * 1024)
            )
        except (ExportError, OSError, ConnectionError) as exc:
            # Not saved: let polling fetch it instead.
            self.rejected += 1
            log.info("push for %s %s not saved: %s", self._kind.value, expected.target.id, exc)
            if not expected.delivered.done():
                expected.delivered.set_exception(
                    exc if isinstance(exc, ExportError) else ExportError(str(exc))
                )
            return web.json_response({"error": {"message": "export rejected"}}, status=422)
        self.received += 1
        if not expected.delivered.done():
            expected.delivered.set_result(saved)
        return web.Response(status=204)


async def wait_for_push(
    delivered: asyncio.Future[SavedExport], grace: float, stopping: asyncio.Event
) -> SavedExport | None:
    """The pushed export, or None when ``grace`` passes (or the run stops) first."""
    stop = asyncio.ensure_future(stopping.wait())
    waiters: set[asyncio.Future[Any]] = {delivered, stop}
    try:
        await asyncio.wait(waiters, timeout=grace, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stop.cancel()
    if delivered.done() and not delivered.cancelled() and delivered.exception() is None:
        return delivered.result()
    return None
