"""The one place that talks HTTP to the platform.

Everything the exporter sends goes through ``PlatformClient._send``, a short
list of steps: wait while the platform is unreachable (``outage.OutageGate``),
take a rate-limit slot, add credentials, send without following redirects,
then read the status: follow a redirect only within the configured host (so
the token never travels elsewhere), renew a rejected JWT once, turn an error
status into one of the classes of ``errors``. aiohttp's exceptions are
translated into ours (``translate``); anything else is a bug and passes
through untouched. ``call`` wraps an operation in the retry policy. What a
response *means* is decided in ``responses``; reading bodies is ``transfer``'s.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import ssl
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any, TypeVar
from urllib.parse import quote, urlencode

import aiohttp

from .._version import __version__
from ..errors import ExportError, RateLimitedError, TargetError, TransientError, UnreachableError
from ..redaction import Redactor, Secret, redact_url
from .auth import BearerAuth
from .auth_endpoint import AuthEndpoint
from .limits import Grant, RateLimiter, RetryPolicy
from .outage import OutageGate
from .responses import (
    CHUNK_BYTES,
    ERROR_BODY_LIMIT,
    PEEK_BYTES,
    REDIRECT_STATUSES,
    error_for_status,
    is_placeholder,
    next_hop,
    readable_error,
    request_id_from,
)
from .settings import ApiSettings
from .transfer import DownloadGuard, NetworkChunks, NoMoreChunks, read_bounded
from .translate import network_error
from .wire_url import WireUrls

__all__ = ["Consume", "PlatformClient"]

log = logging.getLogger("batch_export.platform.client")

T = TypeVar("T")

#: An export consumer: gets the bytes already read and an iterator over the rest.
Consume = Callable[[bytes, AsyncIterator[bytes]], Awaitable[T]]

#: downloads held in memory or being stored, per --concurrency slot
BODIES_PER_CONNECTION = 4


class PlatformClient:
    """An async context manager owning the run's single ``aiohttp.ClientSession``."""

    def __init__(
        self,
        settings: ApiSettings,
        limiter: RateLimiter,
        *,
        concurrency: int = 16,
        retry: RetryPolicy | None = None,
        redactor: Redactor | None = None,
    ) -> None:
        self.settings = settings
        self.limiter = limiter
        self.retry = retry or RetryPolicy()
        self.redactor = redactor or Redactor()
        self.redactor.add(settings.token.reveal())
        self.gate = OutageGate(
            outage_timeout=settings.outage_timeout, startup_timeout=settings.startup_timeout
        )
        self._slots = asyncio.Semaphore(concurrency)
        # Downloads read whole hand their connection back before they are
        # stored; this bounds how many such bodies (up to PEEK_BYTES each)
        # can wait for a slow disk, as the connections used to.
        self._bodies = asyncio.Semaphore(BODIES_PER_CONNECTION * concurrency)
        self._concurrency = concurrency
        self._session: aiohttp.ClientSession | None = None
        self.requests: Counter[str] = Counter()
        self.responses: Counter[int] = Counter()
        self._auth = AuthEndpoint(
            settings, self._require_session, limiter, self.retry, self.redactor,
            requests=self.requests, responses=self.responses,
        )  # fmt: skip
        self._bearer: BearerAuth | None = None
        if settings.api_version == 4:
            self._bearer = BearerAuth(self._auth.fetch, self.redactor)
        self._base = settings.base
        self._urls = WireUrls(self._base)
        # v1–v3 carry the token in every URL; encoded once, and kept a Secret.
        self._token_query = Secret(
            f"access_token={quote(settings.token.reveal(), safe='')}"
            if settings.api_version < 4
            else ""
        )
        self._call_timeout = settings.call_timeouts()
        self._retries = self.throttled = self.overloaded = self.cut_downloads = 0
        self._rng = random.Random()

    async def __aenter__(self) -> PlatformClient:
        ssl_context: ssl.SSLContext | bool = not self.settings.insecure
        connector = aiohttp.TCPConnector(limit=self._concurrency, ssl=ssl_context)
        self._session = aiohttp.ClientSession(
            connector=connector,
            headers={"User-Agent": f"batch-export/{__version__}"},
            timeout=self.settings.session_timeouts(),
            raise_for_status=False,
        )
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    @property
    def retries(self) -> int:
        """Calls made again: after a transient failure, a throttle, an outage, an auth blip."""
        return self._retries + self._auth.retries

    @property
    def jwt_refreshes(self) -> int:
        return self._bearer.refreshes if self._bearer else 0

    def traffic(self) -> dict[str, Any]:
        """What this client sent and got back, for the run summary."""
        return {
            "requests": dict(self.requests),
            "responses": {str(status): n for status, n in sorted(self.responses.items())},
            "retries": self.retries,
            "throttled": self.throttled,
            "overloaded": self.overloaded,
            "outages": self.gate.outages,
            "cut_downloads": self.cut_downloads,
            "jwt_refreshes": self.jwt_refreshes,
            "rate_found": self.limiter.found,
            "rate_start": {"rate": self.limiter.start_rate, "from": self.limiter.origin},
        }

    async def submit(
        self,
        kind: str,
        target_id: str,
        report: str | None = None,
        *,
        before_send: Callable[[], Awaitable[None]] | None = None,
    ) -> str:
        """POST a data request for one target; returns the platform's request ID.

        ``before_send`` runs once the request has its rate-limit slot, just
        before it leaves: the pipeline journals the attempt there (and may
        still call it off), so a queued POST is neither sent after a stop nor
        counted as possibly sent.
        """
        path = f"{kind}/{quote(target_id, safe='')}/datarequest"
        body = {"report": report} if report else None
        async with self._send(
            "POST", path, endpoint="POST datarequest", json_body=body, before_send=before_send
        ) as resp:
            needs_body = not any(map(resp.headers.get, ("X-Created", "X-location", "Location")))
            raw = await read_bounded(resp.content, ERROR_BODY_LIMIT) if needs_body else b""
            rid = request_id_from(resp.headers, raw)
            if rid is None:
                raise TargetError(
                    f"the platform accepted the data request (HTTP {resp.status}) "
                    "but sent no usable request ID"
                )
            return rid

    async def fetch_export(self, request_id: str, consume: Consume[T]) -> T | None:
        """GET the data request: None while the platform serves its placeholder.

        When the export is there, ``consume`` is given the first bytes and an
        iterator over the rest, and its result is returned. A body that
        crawls is cut (``_DownloadGuard``) and the call retried.
        """
        path = f"datarequest/{quote(request_id, safe='')}"
        async with self._bodies:
            # Urgent: a check of a requested export goes before new submits.
            async with self._send(
                "GET", path, endpoint="GET datarequest", stream=True, urgent=True
            ) as resp:
                guard = DownloadGuard(resp, self.settings, self._count_cut)
                try:
                    head = await read_bounded(resp.content, PEEK_BYTES)
                    if len(head) >= PEEK_BYTES:  # a large export: streamed while open
                        # The consumer sees the network's errors already named as
                        # ours: it turns any OSError it meets into a disk error.
                        where = self._base + path
                        rest = NetworkChunks(
                            resp.content.iter_chunked(CHUNK_BYTES),
                            lambda exc: network_error(exc, "GET", where) or exc,
                        )
                        return await consume(head, rest)
                finally:
                    guard.stop()
            # The whole body is here: the connection and its slot go back before
            # the export is stored, so no request waits while a file is fsync'd.
            if is_placeholder(head):
                return None
            return await consume(head, NoMoreChunks())

    async def get_json(self, path: str, params: Mapping[str, str] | None = None) -> Any:
        """GET a small JSON document (ID listings, status)."""
        async with self._send(
            "GET", path, endpoint=f"GET {path.rsplit('/', 1)[-1]}", params=params
        ) as resp:
            raw = await resp.read()
        try:
            return json.loads(raw)
        except ValueError as exc:
            raise TransientError(
                f"the platform answered GET {path} with a body that is not JSON"
            ) from exc

    async def call(
        self,
        operation: Callable[[], Awaitable[T]],
        *,
        on_transient: Callable[[TransientError], Awaitable[None]] | None = None,
    ) -> T:
        """Run ``operation`` under the retry policy.

        A throttled call ("slower": 429, or the overloaded load balancer's
        503/504) pauses the whole client and is tried again without spending an
        attempt: the limit is the account's, not this target's. An unreachable
        platform is the outage gate's to wait out, so it spends no attempt
        either. Every other transient failure spends one, with backoff.
        """
        loop = asyncio.get_running_loop()
        started, attempt = loop.time(), 0
        while True:
            try:
                return await operation()
            except RateLimitedError as exc:
                # _status_error told the limiter, with the pace the request was sent at.
                self.throttled += exc.status == 429
                self.overloaded += exc.status != 429
                self._retries += 1
            except UnreachableError:
                self._retries += 1  # the gate holds the next try until the platform answers
            except TransientError as exc:
                attempt += 1
                if on_transient is not None:
                    await on_transient(exc)
                if self.retry.gives_up(attempt, loop.time() - started):
                    raise TargetError(f"gave up after {attempt} attempts: {exc}") from exc
                self._retries += 1
                await asyncio.sleep(self.retry.delay(attempt, self._rng))

    @asynccontextmanager
    async def _send(
        self,
        method: str,
        path: str,
        *,
        endpoint: str,
        params: Mapping[str, str] | None = None,
        json_body: Mapping[str, Any] | None = None,
        stream: bool = False,
        before_send: Callable[[], Awaitable[None]] | None = None,
        urgent: bool = False,
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        # ``path`` is relative and its IDs are percent-encoded by the caller, so
        # the URL is a concatenation: no urljoin/yarl query building per request.
        url = self._base + path
        if params:
            url = f"{url}?{urlencode(params, quote_via=quote)}"
        may_renew = self._bearer is not None
        hops = 0
        async with self._slots:
            while True:
                resp, headers, grant = await self._exchange(
                    method, url, endpoint, json_body, stream, before_send, urgent
                )
                try:
                    if resp.status in REDIRECT_STATUSES:
                        hops += 1
                        api_url = self.settings.api_url
                        url = next_hop(resp.headers, url, method, hops, api_url, resp.status)
                        continue
                    if resp.status == 401 and may_renew and self._bearer is not None:
                        may_renew = False
                        await self._bearer.invalidate(headers)
                        continue
                    if resp.status >= 300:
                        raise await self._status_error(resp, method, endpoint, grant)
                    try:
                        yield resp
                    except ExportError:
                        raise
                    except Exception as exc:
                        raise (network_error(exc, method, url) or exc) from None
                    return
                finally:
                    resp.release()

    async def _exchange(
        self,
        method: str,
        url: str,
        endpoint: str,
        json_body: Mapping[str, Any] | None,
        stream: bool,
        before_send: Callable[[], Awaitable[None]] | None,
        urgent: bool,
    ) -> tuple[aiohttp.ClientResponse, dict[str, str], Grant]:
        """One request on the wire, past the outage gate and the rate limiter (and its slot)."""
        session = self._require_session()
        probe = await self.gate.admit()
        try:
            grant = await self.limiter.acquire(urgent)
            if before_send is not None:
                await before_send()
            # Spaced from the previous request (submits released together by one
            # journal commit would reach the platform as a burst) and timed;
            # the JWT after that wait, in which it could lapse (0.1 s spare of 1 s).
            grant = await self.limiter.sending(grant)
            headers = await self._auth_headers()
            self.requests[endpoint] += 1
            if log.isEnabledFor(logging.DEBUG):
                log.debug("%s %s", method, redact_url(url))
            try:
                resp = await session.request(
                    method,
                    self._urls.url(self._with_credential(url)),
                    json=json_body,
                    headers=headers,
                    allow_redirects=False,
                    **({} if stream else {"timeout": self._call_timeout}),
                )
            except Exception as exc:
                raise (network_error(exc, method, url) or exc) from None
        except UnreachableError as exc:
            self.gate.unreachable(exc, probe=probe)
            probe = 0
            raise
        finally:
            if probe:
                self.gate.probe_ended(probe)
        self.gate.answered()
        self.responses[resp.status] += 1
        if self.limiter.overload.probing and resp.status < 300:
            self.limiter.overload.answered(grant.at)  # taken: any overload is over
        return resp, headers, grant

    def _with_credential(self, url: str) -> str:
        """``url`` with the access token in its query (API v1–v3; v4 sends a JWT header)."""
        if not self._token_query:
            return url
        return f"{url}{'&' if '?' in url else '?'}{self._token_query.reveal()}"

    def _require_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("PlatformClient used outside 'async with'")
        return self._session

    async def _auth_headers(self) -> dict[str, str]:
        return {} if self._bearer is None else await self._bearer.header()

    async def _status_error(
        self, resp: aiohttp.ClientResponse, method: str, endpoint: str, grant: Grant
    ) -> ExportError:
        """The error an error status means (its body read within a deadline: it may trickle).

        A "slower" is told to the limiter, charged to the slot (pace and time) it was sent in."""
        try:
            body = await asyncio.wait_for(
                read_bounded(resp.content, ERROR_BODY_LIMIT), self.settings.call_timeout
            )
        except (asyncio.TimeoutError, aiohttp.ClientError, OSError):
            body = b""
        message = self.redactor(readable_error(body, resp.headers.get("Content-Type", "")))
        where = f"{method} {endpoint.split(' ', 1)[-1]}"
        error = error_for_status(resp.status, resp.headers, body, where, message)
        if isinstance(error, RateLimitedError):
            self.limiter.on_throttled(error.retry_after, grant.pace, grant.at)
        elif self.limiter.overload.probing:
            self.limiter.overload.answered(grant.at)
        return error

    def _count_cut(self) -> None:
        self.cut_downloads += 1
