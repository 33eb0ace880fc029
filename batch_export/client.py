"""The one place that talks HTTP to the platform.

Everything the exporter sends goes through ``PlatformClient._send``: it paces
the request (rate limiter, concurrency cap), adds credentials, follows
redirects only within the configured host (so the token never travels
elsewhere), turns statuses and aiohttp exceptions into the classes of
``errors`` with messages built from redacted URLs, and counts what it did.
``call`` wraps an operation in the retry policy.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import random
import re
import ssl
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import quote, urlencode, urljoin, urlsplit

import aiohttp
from yarl import URL

from ._version import __version__
from .auth import BearerAuth
from .errors import (
    AuthError,
    ConfigError,
    ExportError,
    RateLimitedError,
    RequestGoneError,
    TargetError,
    TransientError,
)
from .limits import RateLimiter, RetryPolicy
from .redaction import Redactor, Secret, redact_url

__all__ = ["ApiSettings", "PlatformClient", "parse_retry_after", "read_bounded"]

log = logging.getLogger("batch_export.client")

T = TypeVar("T")

#: An export consumer: gets the bytes already read and an iterator over the rest.
Consume = Callable[[bytes, AsyncIterator[bytes]], Awaitable[T]]

#: bodies up to this size are read whole to tell a placeholder from an export
PEEK_BYTES = 64 * 1024
#: error bodies are read up to this size and no further (some proxies send megabytes)
ERROR_BODY_LIMIT = 64 * 1024
#: chunk size asked of aiohttp while streaming an export
CHUNK_BYTES = 256 * 1024
MAX_REDIRECTS = 5
#: downloads held in memory or being stored, per --concurrency slot
BODIES_PER_CONNECTION = 4
_RETRYABLE_STATUSES = frozenset({408, 500, 502, 503, 504})
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})


@dataclass(frozen=True)
class ApiSettings:
    """Where the platform is and how to talk to it."""

    api_url: str = "https://api.copernica.com"
    api_version: int = 2
    auth_url: str = "https://authenticate.copernica.com"
    token: Secret = field(default_factory=lambda: Secret(""))
    insecure: bool = False
    connect_timeout: float = 15.0
    #: longest silence while reading a response: a stalled body fails, a slow one does not
    read_timeout: float = 60.0
    #: cap on a whole non-streaming call (submit, placeholder poll)
    call_timeout: float = 120.0

    @property
    def base(self) -> str:
        return f"{self.api_url.rstrip('/')}/v{self.api_version}/"


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header: delay-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    reference = time.time() if now is None else now
    return max(0.0, when.timestamp() - reference)


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = URL(url)
    return (parts.scheme, (parts.host or "").lower(), parts.explicit_port or parts.port)


_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


def _clean_text(text: str, limit: int = 300) -> str:
    text = _CONTROL.sub(" ", text).strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


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
        if settings.api_version not in (1, 2, 3, 4):
            raise ConfigError(f"unknown API version {settings.api_version}; use 1, 2, 3 or 4")
        self.settings = settings
        self.limiter = limiter
        self.retry = retry or RetryPolicy()
        self.redactor = redactor or Redactor()
        self.redactor.add(settings.token.reveal())
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
            rid = resp.headers.get("X-Created", "").strip()
            if not rid:
                location = resp.headers.get("X-location") or resp.headers.get("Location") or ""
                rid = location.rstrip("/").rsplit("/", 1)[-1] if location else ""
            if not rid:
                rid = _rid_from_body(await read_bounded(resp.content, ERROR_BODY_LIMIT))
            if not rid or len(rid) > 200 or any(ch in rid for ch in "/?#\x00\r\n"):
                raise TargetError(
                    f"the platform accepted the data request (HTTP {resp.status}) "
                    "but sent no usable request ID"
                )
            return rid

    async def fetch_export(self, request_id: str, consume: Consume[T]) -> T | None:
        """GET the data request: None while the platform serves its placeholder.

        When the export is there, ``consume`` is given the first bytes and an
        iterator over the rest, and its result is returned.
        """
        path = f"datarequest/{quote(request_id, safe='')}"
        async with self._bodies:
            async with self._send("GET", path, endpoint="GET datarequest", stream=True) as resp:
                head = await read_bounded(resp.content, PEEK_BYTES)
                if len(head) >= PEEK_BYTES:  # a large export: streamed while the response is open
                    # The consumer sees the network's errors already named as
                    # ours: it turns any OSError it meets into a disk error.
                    where = self._base + path
                    rest = _NetworkChunks(
                        resp.content.iter_chunked(CHUNK_BYTES),
                        lambda exc: self._translate(exc, "GET", where),
                    )
                    return await consume(head, rest)
            # The whole body is here: the connection and its slot go back before
            # the export is stored, so no request waits while a file is fsync'd.
            if _is_placeholder(head):
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
            raise TargetError(
                f"the platform answered GET {path} with a body that is not JSON"
            ) from exc

    async def call(
        self,
        operation: Callable[[], Awaitable[T]],
        *,
        on_transient: Callable[[TransientError], Awaitable[None]] | None = None,
    ) -> T:
        """Run ``operation`` under the retry policy; 429s pause the whole client."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        attempt = 0
        while True:
            try:
                return await operation()
            except RateLimitedError as exc:
                self.limiter.on_throttled(exc.retry_after)
                if loop.time() - started >= self.retry.max_elapsed:
                    raise TargetError(
                        f"still rate limited after {self.retry.max_elapsed:.0f}s"
                    ) from exc
                self.retries += 1
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
        session = self._require_session()
        # ``path`` is relative and its IDs are percent-encoded by the caller, so
        # the URL is a concatenation: no urljoin/yarl query building per request.
        url = self._base + path
        if params:
            url = f"{url}?{urlencode(params, quote_via=quote)}"
        refreshed = False
        hops = 0
        async with self._slots:
            while True:
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
                    raise self._translate(exc, method, url) from None
                try:
                    self.responses[resp.status] += 1
                    if resp.status in _REDIRECT_STATUSES:
                        url = self._redirect_target(resp, url)
                        hops += 1
                        if hops > MAX_REDIRECTS:
                            raise TargetError(
                                f"more than {MAX_REDIRECTS} redirects for {method} {redact_url(url)}"
                            )
                        continue
                    if resp.status == 401 and self._bearer is not None and not refreshed:
                        refreshed = True
                        await self._bearer.invalidate(headers)
                        continue
                    if resp.status >= 300:
                        raise await self._status_error(resp, method, endpoint)
                    try:
                        yield resp
                    except ExportError:
                        raise
                    except Exception as exc:
                        raise self._translate(exc, method, url) from None
                    return
                finally:
                    resp.release()

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

    async def _fetch_jwt(self) -> str:
        """POST the access token to the auth endpoint; the body is the JWT."""
        session = self._require_session()
        await self.limiter.acquire()
        self.requests["POST authenticate"] += 1
        auth_url = self.settings.auth_url
        try:
            async with session.post(
                auth_url,
                data={"access_token": self.settings.token.reveal()},
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=self.settings.call_timeout),
            ) as resp:
                self.responses[resp.status] += 1
                body = await read_bounded(resp.content, ERROR_BODY_LIMIT)
                status = resp.status
        except Exception as exc:
            raise AuthError(
                f"cannot obtain a JWT: {self._translate(exc, 'POST', auth_url)}"
            ) from None
        if status == 429:
            self.limiter.on_throttled(parse_retry_after(resp.headers.get("Retry-After")))
        if status >= 300:
            message = self.redactor(_error_message(body, resp.headers.get("Content-Type", "")))
            raise AuthError(
                f"the auth endpoint {redact_url(auth_url)} refused the access token "
                f"(HTTP {status}: {message})"
            )
        return body.decode("utf-8", "replace")

    def _redirect_target(self, resp: aiohttp.ClientResponse, current: str) -> str:
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
        message = self.redactor(_error_message(body, resp.headers.get("Content-Type", "")))
        status = resp.status
        where = f"{method} {endpoint.split(' ', 1)[-1]}"
        text = f"HTTP {status} from {where}: {message}"
        if status in (401, 403):
            return AuthError(f"the platform rejected the credentials ({text})")
        if status == 429:
            return RateLimitedError(
                text, retry_after=parse_retry_after(resp.headers.get("Retry-After"))
            )
        if status in _RETRYABLE_STATUSES:
            return TransientError(text, status=status)
        if status == 404 and endpoint == "GET datarequest":
            return RequestGoneError(
                f"the platform no longer knows this request ({text})", status=404
            )
        return TargetError(text, status=status)

    def _translate(self, exc: BaseException, method: str, url: str) -> ExportError:
        """An aiohttp/OS exception as one of ours, never quoting aiohttp's text (it has the URL)."""
        where = f"{method} {redact_url(url)}"
        if isinstance(exc, ExportError):
            return exc
        if isinstance(exc, aiohttp.InvalidURL):
            return ConfigError(f"invalid URL: {where}")
        if isinstance(exc, aiohttp.ClientConnectorError):
            return TransientError(f"cannot connect for {where} ({type(exc).__name__})")
        if isinstance(exc, (asyncio.TimeoutError, TimeoutError)):
            return TransientError(f"timed out during {where}", maybe_sent=True)
        if isinstance(exc, aiohttp.ClientPayloadError):
            return TransientError(f"the body of {where} was cut short", maybe_sent=True)
        if isinstance(exc, (aiohttp.ClientError, OSError)):
            return TransientError(
                f"connection lost during {where} ({type(exc).__name__})", maybe_sent=True
            )
        if isinstance(exc, asyncio.CancelledError):
            raise exc
        return TransientError(f"unexpected {type(exc).__name__} during {where}", maybe_sent=True)


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


#: the placeholder is a one-line JSON object; anything longer is treated as an export
#: (and the store's check still refuses a placeholder), so exports are not parsed twice
PLACEHOLDER_MAX_BYTES = 1024


class _NetworkChunks:
    """A response body's chunks, with aiohttp's exceptions turned into ours as they occur."""

    def __init__(
        self, chunks: AsyncIterator[bytes], translate: Callable[[Exception], ExportError]
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


def _is_placeholder(body: bytes) -> bool:
    """The platform's "not ready" answer: a JSON object whose ``data`` is a string."""
    if len(body) > PLACEHOLDER_MAX_BYTES:
        return False
    try:
        doc = json.loads(body)
    except ValueError:
        return False
    return isinstance(doc, dict) and isinstance(doc.get("data"), str) and "info" not in doc


def _rid_from_body(body: bytes) -> str:
    text = body.decode("utf-8", "replace").strip()
    if not text:
        return ""
    try:
        doc = json.loads(text)
    except ValueError:
        return text if len(text) <= 200 and " " not in text else ""
    if isinstance(doc, (str, int)):
        return str(doc)
    if isinstance(doc, dict):
        for key in ("id", "ID", "requestid", "request_id"):
            if isinstance(doc.get(key), (str, int)):
                return str(doc[key])
    return ""


def _error_message(body: bytes, content_type: str) -> str:
    """A short readable reason from an error body of any shape."""
    text = body.decode("utf-8", "replace")
    if not text.strip():
        return "empty body"
    try:
        doc = json.loads(text)
    except ValueError:
        if "html" in content_type.lower() or text.lstrip()[:1] == "<":
            return "an HTML page instead of the platform's JSON (a proxy or gateway?)"
        return _clean_text(text)
    if isinstance(doc, dict):
        error = doc.get("error")
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return _clean_text(error["message"])
        if isinstance(error, str):
            return _clean_text(error)
        if isinstance(doc.get("message"), str):
            return _clean_text(doc["message"])
    return _clean_text(text)
