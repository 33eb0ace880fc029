"""The one place that talks HTTP to the platform.

Everything the exporter sends goes through ``PlatformClient._send``, a short
list of steps: wait while the platform is unreachable (``outage.OutageGate``),
take a rate-limit slot, add credentials, send without following redirects,
then read the status: follow a redirect only within the configured host (so
the token never travels elsewhere), renew a rejected JWT once, turn an error
status into one of the classes of ``errors``. aiohttp's exceptions are
translated into ours with messages built from redacted URLs; anything else is
a bug and passes through untouched. ``call`` wraps an operation in the retry
policy; what a response *means* is decided in ``responses``.
"""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import random
import ssl
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar
from urllib.parse import quote, urlencode, urljoin, urlsplit

import aiohttp
from yarl import URL

from .._version import __version__
from ..errors import (
    AuthError,
    ConfigError,
    ExportError,
    RateLimitedError,
    RequestGoneError,
    TargetError,
    TransientError,
    UnreachableError,
)
from ..redaction import Redactor, Secret, redact_url
from .auth import BearerAuth
from .limits import RateLimiter, RetryPolicy
from .outage import OutageGate
from .responses import (
    ERROR_BODY_LIMIT,
    PEEK_BYTES,
    is_overload,
    is_placeholder,
    parse_retry_after,
    readable_error,
    request_id_from,
)

__all__ = ["DEFAULT_API_URL", "DEFAULT_AUTH_URL", "ApiSettings", "PlatformClient", "read_bounded"]

log = logging.getLogger("batch_export.platform.client")

T = TypeVar("T")

#: An export consumer: gets the bytes already read and an iterator over the rest.
Consume = Callable[[bytes, AsyncIterator[bytes]], Awaitable[T]]

DEFAULT_API_URL = "https://api.copernica.com"
DEFAULT_AUTH_URL = "https://authenticate.copernica.com"
#: the platform's own hosts, which may be used with the default auth endpoint
_PLATFORM_DOMAIN = "copernica.com"
#: chunk size asked of aiohttp while streaming an export
CHUNK_BYTES = 256 * 1024
MAX_REDIRECTS = 5
#: downloads held in memory or being stored, per --concurrency slot
BODIES_PER_CONNECTION = 4
#: the longest a JWT may be; anything longer from the auth endpoint is not one
_JWT_MAX = 16 * 1024
_RETRYABLE_STATUSES = frozenset({408, 500, 502, 503, 504})
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})


@dataclass(frozen=True)
class ApiSettings:
    """Where the platform is and how to talk to it; validated when built."""

    api_url: str = DEFAULT_API_URL
    api_version: int = 2
    auth_url: str = DEFAULT_AUTH_URL
    token: Secret = field(default_factory=lambda: Secret(""))
    insecure: bool = False
    connect_timeout: float = 15.0
    #: longest silence while reading a response: a stalled body fails, a slow one does not
    read_timeout: float = 60.0
    #: cap on a whole non-streaming call (submit, ID listing)
    call_timeout: float = 120.0
    #: a download slower than this many bytes per second over ``download_window`` is cut
    download_floor: float = 1024.0
    download_window: float = 30.0
    #: a download with a Content-Length is cut after call_timeout + length / this rate
    download_deadline_rate: float = 64 * 1024.0
    #: how long an unreachable platform is waited for mid-run before the run stops
    outage_timeout: float = 900.0
    #: the same before anything was reached in this run (a wrong URL, no network)
    startup_timeout: float = 20.0

    def __post_init__(self) -> None:
        if self.api_version not in (1, 2, 3, 4):
            raise ConfigError(
                f"unknown --api-version {self.api_version}; use 2, 3 or 4 (1 also works)"
            )
        for name in (
            "connect_timeout",
            "read_timeout",
            "call_timeout",
            "download_window",
            "download_deadline_rate",
            "outage_timeout",
            "startup_timeout",
        ):
            if not getattr(self, name) > 0:
                raise ConfigError(f"{name.replace('_', ' ')} must be greater than 0")
        if self.download_floor < 0:
            raise ConfigError("download floor must be 0 (off) or more bytes per second")
        if (
            self.api_version == 4
            and self.auth_url == DEFAULT_AUTH_URL
            and not _is_platform_host(self.api_url)
        ):
            host = urlsplit(self.api_url).hostname or self.api_url
            raise ConfigError(
                f"--api-url points at {host}, but --auth-url is still the platform's "
                f"{DEFAULT_AUTH_URL}: the access token would be sent to a host you did not "
                f"name; pass --auth-url too (e.g. --auth-url {self.api_url.rstrip('/')}/authenticate)"
            )

    @property
    def base(self) -> str:
        return f"{self.api_url.rstrip('/')}/v{self.api_version}/"


def _is_platform_host(url: str) -> bool:
    host = (urlsplit(url).hostname or "").lower()
    return host == _PLATFORM_DOMAIN or host.endswith("." + _PLATFORM_DOMAIN)


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = URL(url)
    return (parts.scheme, (parts.host or "").lower(), parts.explicit_port or parts.port)


def _host_of(url: str) -> str:
    """``host`` or ``host:port`` as the user wrote it, for messages (never credentials)."""
    parts = urlsplit(url)
    host = parts.hostname or "?"
    return f"{host}:{parts.port}" if parts.port else host


def unreachable_reason(exc: BaseException) -> str | None:
    """Why no connection could be made, or None when ``exc`` is not a connect failure."""
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return "the host name does not resolve"
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return "its TLS certificate is not accepted"
    if isinstance(exc, aiohttp.ClientConnectorSSLError):
        return "the TLS handshake failed"
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return "connecting timed out"
    if isinstance(exc, aiohttp.ClientConnectorError):
        os_error = exc.os_error
        if os_error.errno == errno.ECONNREFUSED or isinstance(os_error, ConnectionRefusedError):
            return "connection refused"
        if isinstance(os_error, ssl.SSLError):
            return "the TLS handshake failed"
        return (os_error.strerror or type(os_error).__name__).lower()
    return None


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
        self._bearer: BearerAuth | None = None
        if settings.api_version == 4:
            self._bearer = BearerAuth(self._fetch_jwt, self.redactor)
        self._base = settings.base
        # v1–v3 carry the token in every URL; encoded once, and kept a Secret.
        self._token_query = Secret(
            f"access_token={quote(settings.token.reveal(), safe='')}"
            if settings.api_version < 4
            else ""
        )
        self._call_timeout = aiohttp.ClientTimeout(total=settings.call_timeout)
        self.requests: Counter[str] = Counter()
        self.responses: Counter[int] = Counter()
        self.retries = 0
        self.throttled = 0
        self.overloaded = 0
        self.cut_downloads = 0
        self._rng = random.Random()

    # -- lifecycle -------------------------------------------------------

    async def __aenter__(self) -> PlatformClient:
        ssl_context: ssl.SSLContext | bool = not self.settings.insecure
        connector = aiohttp.TCPConnector(limit=self._concurrency, ssl=ssl_context)
        self._session = aiohttp.ClientSession(
            connector=connector,
            headers={"User-Agent": f"batch-export/{__version__}"},
            timeout=aiohttp.ClientTimeout(
                total=None,
                connect=self.settings.connect_timeout,
                sock_read=self.settings.read_timeout,
            ),
            raise_for_status=False,
        )
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

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
        }

    # -- the platform's calls ---------------------------------------------

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
            needs_body = not (resp.headers.get("X-Created") or resp.headers.get("X-location"))
            needs_body = needs_body and not resp.headers.get("Location")
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
            async with self._send("GET", path, endpoint="GET datarequest", stream=True) as resp:
                guard = _DownloadGuard(resp, self.settings, self)
                try:
                    head = await read_bounded(resp.content, PEEK_BYTES)
                    if (
                        len(head) >= PEEK_BYTES
                    ):  # a large export: streamed while the response is open
                        # The consumer sees the network's errors already named as
                        # ours: it turns any OSError it meets into a disk error.
                        where = self._base + path
                        rest = _NetworkChunks(
                            resp.content.iter_chunked(CHUNK_BYTES),
                            lambda exc: self._network_error(exc, "GET", where) or exc,
                        )
                        return await consume(head, rest)
                finally:
                    guard.stop()
            # The whole body is here: the connection and its slot go back before
            # the export is stored, so no request waits while a file is fsync'd.
            if is_placeholder(head):
                return None
            return await consume(head, _NoMoreChunks())

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
        started = loop.time()
        attempt = 0
        while True:
            try:
                return await operation()
            except RateLimitedError as exc:
                self.limiter.on_throttled(exc.retry_after)
                self.retries += 1
            except UnreachableError:
                self.retries += 1  # the gate holds the next try until the platform answers
            except TransientError as exc:
                attempt += 1
                if on_transient is not None:
                    await on_transient(exc)
                if self.retry.gives_up(attempt, loop.time() - started):
                    raise TargetError(f"gave up after {attempt} attempts: {exc}") from exc
                self.retries += 1
                await asyncio.sleep(self.retry.delay(attempt, self._rng))

    # -- the single request path ---------------------------------------------

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
                resp, headers = await self._exchange(
                    method, url, endpoint, json_body, stream, before_send
                )
                try:
                    if resp.status in _REDIRECT_STATUSES:
                        hops += 1
                        url = self._next_hop(resp, url, method, hops)
                        continue
                    if resp.status == 401 and may_renew and self._bearer is not None:
                        may_renew = False
                        await self._bearer.invalidate(headers)
                        continue
                    if resp.status >= 300:
                        raise await self._status_error(resp, method, endpoint)
                    try:
                        yield resp
                    except ExportError:
                        raise
                    except Exception as exc:
                        raise (self._network_error(exc, method, url) or exc) from None
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
    ) -> tuple[aiohttp.ClientResponse, dict[str, str]]:
        """One request on the wire, past the outage gate and the rate limiter."""
        session = self._require_session()
        probe = await self.gate.admit()
        try:
            await self.limiter.acquire()
            if before_send is not None:
                await before_send()
            headers = await self._auth_headers()
            self.requests[endpoint] += 1
            if log.isEnabledFor(logging.DEBUG):
                log.debug("%s %s", method, redact_url(url))
            try:
                resp = await session.request(
                    method,
                    URL(self._with_credential(url), encoded=True),
                    json=json_body,
                    headers=headers,
                    allow_redirects=False,
                    **({} if stream else {"timeout": self._call_timeout}),
                )
            except Exception as exc:
                raise (self._network_error(exc, method, url) or exc) from None
        except UnreachableError as exc:
            self.gate.unreachable(exc, probe=probe)
            probe = False
            raise
        finally:
            if probe:
                self.gate.probe_ended()
        self.gate.answered()
        self.responses[resp.status] += 1
        return resp, headers

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
        if self._bearer is None:
            return {}
        return await self._bearer.header()

    async def _fetch_jwt(self, has_fallback: bool) -> str:
        """POST the access token to the auth endpoint; the body is the JWT.

        Only a 400, 401 or 403 means the credentials were rejected. Timeouts,
        resets, 5xx and 429 are blips: with a still-valid JWT at hand
        (``has_fallback``) one attempt is made and a blip is raised, so the
        current JWT goes on serving; without one they are retried here with
        the retry policy, more patiently than a data call (every request waits
        on this one). An unreachable endpoint is left to the outage gate.
        """
        if has_fallback:
            try:
                return await self._post_for_jwt()
            except RateLimitedError as exc:
                self.limiter.on_throttled(exc.retry_after)
                raise
        policy = replace(self.retry, max_attempts=max(self.retry.max_attempts, 20))
        loop = asyncio.get_running_loop()
        started = loop.time()
        attempt = 0
        while True:
            try:
                return await self._post_for_jwt()
            except RateLimitedError as exc:
                self.limiter.on_throttled(exc.retry_after)
                error: TransientError = exc
            except UnreachableError:
                raise
            except TransientError as exc:
                error = exc
            attempt += 1
            if policy.gives_up(attempt, loop.time() - started):
                raise AuthError(
                    f"cannot obtain a JWT: the auth endpoint kept failing ({error}); "
                    "stopping — rerun the same command to resume"
                ) from None
            self.retries += 1
            log.info("auth endpoint: %s; retrying", error)
            await asyncio.sleep(policy.delay(attempt, self._rng))

    async def _post_for_jwt(self) -> str:
        session = self._require_session()
        auth_url = self.settings.auth_url
        await self.limiter.acquire()
        self.requests["POST authenticate"] += 1
        try:
            async with session.post(
                auth_url,
                data={"access_token": self.settings.token.reveal()},
                allow_redirects=False,
                timeout=self._call_timeout,
            ) as resp:
                self.responses[resp.status] += 1
                body = await read_bounded(resp.content, ERROR_BODY_LIMIT)
                status, headers = resp.status, resp.headers
        except Exception as exc:
            error = self._network_error(exc, "POST", auth_url)
            if error is None:
                raise
            raise error from None
        self.gate.answered()
        where = f"the auth endpoint {redact_url(auth_url)}"
        if status in (400, 401, 403):
            message = self.redactor(readable_error(body, headers.get("Content-Type", "")))
            raise AuthError(f"{where} refused the access token (HTTP {status}: {message})")
        if status == 429 or is_overload(status, headers, body):
            raise RateLimitedError(
                f"{where} is throttling (HTTP {status})",
                retry_after=parse_retry_after(headers.get("Retry-After")),
                status=status,
            )
        if status in _RETRYABLE_STATUSES:
            raise TransientError(f"{where} answered HTTP {status}", status=status)
        if status >= 300:
            message = self.redactor(readable_error(body, headers.get("Content-Type", "")))
            raise AuthError(f"{where} answered HTTP {status} ({message}); check --auth-url")
        jwt = body.decode("utf-8", "replace").strip().strip('"')
        if not jwt or len(jwt) > _JWT_MAX or any(ch.isspace() or ch in "<{" for ch in jwt):
            raise TransientError(f"{where} answered {status} with something that is not a JWT")
        return jwt

    def _next_hop(self, resp: aiohttp.ClientResponse, current: str, method: str, hops: int) -> str:
        """Where a redirect leads, if it may be followed with the credentials."""
        if hops > MAX_REDIRECTS:
            raise TargetError(
                f"more than {MAX_REDIRECTS} redirects for {method} {redact_url(current)}"
            )
        location = resp.headers.get("Location") or resp.headers.get("X-location") or ""
        if not location:
            raise TargetError(f"HTTP {resp.status} redirect without a Location header")
        target = urljoin(current, location)
        if _origin(target) != _origin(self.settings.api_url):
            # Following would hand the token (query or header) to another host.
            raise TargetError(
                f"the platform redirected to another host ({_origin(target)[1] or '?'}); "
                "not following it with the credentials — check --api-url"
            )
        # Drop any credential the Location carries; ours is added on the next hop.
        parts = urlsplit(target)
        kept = "&".join(
            p for p in parts.query.split("&") if p and not p.lower().startswith("access_token=")
        )
        return parts._replace(query=kept, fragment="").geturl()

    async def _status_error(
        self, resp: aiohttp.ClientResponse, method: str, endpoint: str
    ) -> ExportError:
        body = await read_bounded(resp.content, ERROR_BODY_LIMIT)
        message = self.redactor(readable_error(body, resp.headers.get("Content-Type", "")))
        status = resp.status
        where = f"{method} {endpoint.split(' ', 1)[-1]}"
        text = f"HTTP {status} from {where}: {message}"
        if status in (401, 403):
            return AuthError(f"the platform rejected the credentials ({text})")
        retry_after = parse_retry_after(resp.headers.get("Retry-After"))
        if status == 429:
            self.throttled += 1
            return RateLimitedError(text, retry_after=retry_after)
        if is_overload(status, resp.headers, body):
            self.overloaded += 1
            return RateLimitedError(text, retry_after=retry_after, status=status)
        if status in _RETRYABLE_STATUSES:
            return TransientError(text, status=status)
        if status == 404 and endpoint == "GET datarequest":
            return RequestGoneError(
                f"the platform no longer knows this request ({text})", status=404
            )
        return TargetError(text, status=status)

    def _network_error(self, exc: BaseException, method: str, url: str) -> ExportError | None:
        """An aiohttp, OS or timeout exception as one of ours; None for anything else.

        aiohttp's own text is never quoted (it has the URL, and so the token).
        Anything that is not a network failure is a bug: the caller re-raises it
        untouched, so it is neither retried nor mistaken for a lost connection.
        """
        if isinstance(exc, ExportError):
            return exc
        where = f"{method} {redact_url(url)}"
        if isinstance(exc, aiohttp.InvalidURL):
            return ConfigError(f"invalid URL: {where}")
        reason = unreachable_reason(exc)
        if reason is not None:
            host = _host_of(url)
            return UnreachableError(f"cannot reach {host}: {reason}", host=host, reason=reason)
        if isinstance(exc, (asyncio.TimeoutError, TimeoutError)):
            return TransientError(f"timed out during {where}", maybe_sent=True)
        if isinstance(exc, aiohttp.ClientPayloadError):
            return TransientError(f"the body of {where} was cut short", maybe_sent=True)
        if isinstance(exc, aiohttp.ServerDisconnectedError):
            return TransientError(
                f"the platform closed the connection during {where} with no answer", maybe_sent=True
            )
        if isinstance(exc, (aiohttp.ClientError, OSError)):
            return TransientError(
                f"connection lost during {where} ({type(exc).__name__})", maybe_sent=True
            )
        return None


class _DownloadGuard:
    """Cuts a download that crawls, so that no answer can hold a run hostage.

    ``sock_read`` restarts on every byte, so a body that trickles (a byte every
    few seconds) never trips it. Every ``download_window`` seconds this
    checks that at least ``download_floor`` bytes per second arrived in the
    window, and that a body with a Content-Length is not past a deadline
    scaled to that length; otherwise the body's reader is failed with a
    TransientError and the call is retried. One timer per download, and the
    byte count is aiohttp's own (``StreamReader.total_bytes``): nothing per chunk.
    """

    def __init__(
        self, resp: aiohttp.ClientResponse, settings: ApiSettings, client: PlatformClient
    ) -> None:
        self._resp = resp
        self._client = client
        self._floor = settings.download_floor
        self._window = settings.download_window
        loop = asyncio.get_running_loop()
        self._loop = loop
        length = resp.content_length
        self._deadline = (
            loop.time() + settings.call_timeout + length / settings.download_deadline_rate
            if length is not None
            else None
        )
        self._seen = resp.content.total_bytes
        self._timer: asyncio.TimerHandle | None = None
        if self._floor > 0 or self._deadline is not None:
            self._timer = loop.call_later(self._next_wait(), self._check)

    def _next_wait(self) -> float:
        if self._deadline is None:
            return self._window
        return max(0.0, min(self._window, self._deadline - self._loop.time()))

    def _check(self) -> None:
        now = self._loop.time()
        received = self._resp.content.total_bytes
        if self._deadline is not None and now >= self._deadline:
            self._cut(f"took longer than its deadline for {self._resp.content_length} bytes")
            return
        if self._floor > 0 and received - self._seen < self._floor * self._window:
            self._cut(
                f"moved slower than {self._floor:g} bytes/s over {self._window:g}s "
                f"({received - self._seen} bytes)"
            )
            return
        self._seen = received
        self._timer = self._loop.call_later(self._next_wait(), self._check)

    def _cut(self, why: str) -> None:
        self._timer = None
        self._client.cut_downloads += 1
        self._resp.content.set_exception(
            TransientError(f"the download {why}: cut, to be retried", maybe_sent=True)
        )
        self._resp.close()

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


async def read_bounded(stream: aiohttp.StreamReader, limit: int) -> bytes:
    """Up to ``limit`` bytes of a body (all of it if shorter): requests and responses alike."""
    parts: list[bytes] = []
    size = 0
    while size < limit:
        chunk = await stream.read(limit - size)
        if not chunk:
            break
        parts.append(chunk)
        size += len(chunk)
    return b"".join(parts)


class _NetworkChunks:
    """A response body's chunks, with aiohttp's exceptions turned into ours as they occur."""

    def __init__(
        self, chunks: AsyncIterator[bytes], translate: Callable[[Exception], BaseException]
    ) -> None:
        self._chunks = chunks
        self._translate = translate

    def __aiter__(self) -> _NetworkChunks:
        return self

    async def __anext__(self) -> bytes:
        try:
            return await self._chunks.__anext__()
        except (StopAsyncIteration, ExportError):
            raise
        except Exception as exc:
            raise self._translate(exc) from None


class _NoMoreChunks:
    """The rest of a body that was read whole: an async iterator over nothing."""

    def __aiter__(self) -> _NoMoreChunks:
        return self

    async def __anext__(self) -> bytes:
        raise StopAsyncIteration
