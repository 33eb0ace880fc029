"""Exchanging the access token for a v4 JWT at the auth endpoint, riding out its blips.

Only a 400, 401 or 403 means the credentials were rejected. Timeouts,
resets, 5xx and 429 are blips. With a still-valid JWT at hand one attempt is
made and a blip is raised, so the current JWT goes on serving (``BearerAuth``
keeps it); without one they are retried with the retry policy, more
patiently than a data call, because every request waits on this one. An
unreachable endpoint raises ``UnreachableError`` for the outage gate.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import replace

import aiohttp
from multidict import CIMultiDictProxy

from ..errors import AuthError, RateLimitedError, TransientError, UnreachableError
from ..redaction import Redactor, redact_url
from .limits import RateLimiter, RetryPolicy
from .responses import ERROR_BODY_LIMIT, is_overload, parse_retry_after, readable_error
from .settings import ApiSettings
from .transfer import read_bounded
from .translate import network_error

__all__ = ["AuthEndpoint"]

log = logging.getLogger("batch_export.platform.auth_endpoint")

#: the longest a JWT may be; anything longer from the auth endpoint is not one
_JWT_MAX = 16 * 1024
#: the fewest attempts at a first JWT (or one after a 401) before the run stops
_PATIENT_ATTEMPTS = 20
_RETRYABLE_STATUSES = frozenset({408, 500, 502, 503, 504})


class AuthEndpoint:
    """POSTs the access token to ``settings.auth_url``; the answer's body is the JWT."""

    def __init__(
        self,
        settings: ApiSettings,
        session: Callable[[], aiohttp.ClientSession],
        limiter: RateLimiter,
        retry: RetryPolicy,
        redactor: Redactor,
        *,
        requests: Counter[str],
        responses: Counter[int],
    ) -> None:
        self._settings = settings
        self._session = session
        self._limiter = limiter
        self._policy = replace(retry, max_attempts=max(retry.max_attempts, _PATIENT_ATTEMPTS))
        self._redactor = redactor
        self._requests = requests
        self._responses = responses
        self._timeout = settings.call_timeouts()
        self._rng = random.Random()
        self.retries = 0

    async def fetch(self, has_fallback: bool) -> str:
        """A fresh JWT; one attempt when ``has_fallback``, else patient retries, then AuthError."""
        if has_fallback:
            return await self._attempt()
        loop = asyncio.get_running_loop()
        started = loop.time()
        attempt = 0
        while True:
            try:
                return await self._attempt()
            except UnreachableError:
                raise
            except TransientError as exc:
                attempt += 1
                if self._policy.gives_up(attempt, loop.time() - started):
                    raise AuthError(
                        f"cannot obtain a JWT: the auth endpoint kept failing ({exc}); "
                        "stopping — rerun the same command to resume"
                    ) from None
                self.retries += 1
                log.info("auth endpoint: %s; retrying", exc)
                await asyncio.sleep(self._policy.delay(attempt, self._rng))

    async def _attempt(self) -> str:
        status, headers, body = await self._post()
        try:
            return self._jwt_from(status, headers, body)
        except RateLimitedError as exc:
            self._limiter.on_throttled(exc.retry_after)
            raise

    async def _post(self) -> tuple[int, CIMultiDictProxy[str], bytes]:
        auth_url = self._settings.auth_url
        await self._limiter.acquire()
        self._requests["POST authenticate"] += 1
        try:
            async with self._session().post(
                auth_url,
                data={"access_token": self._settings.token.reveal()},
                allow_redirects=False,
                timeout=self._timeout,
            ) as resp:
                self._responses[resp.status] += 1
                body = await read_bounded(resp.content, ERROR_BODY_LIMIT)
                return resp.status, resp.headers, body
        except Exception as exc:
            error = network_error(exc, "POST", auth_url)
            if error is None:
                raise
            raise error from None

    def _jwt_from(self, status: int, headers: CIMultiDictProxy[str], body: bytes) -> str:
        """The JWT in a 2xx answer, or the error the status means."""
        where = f"the auth endpoint {redact_url(self._settings.auth_url)}"
        content_type = headers.get("Content-Type", "")
        if status in (400, 401, 403):
            message = self._redactor(readable_error(body, content_type))
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
            message = self._redactor(readable_error(body, content_type))
            raise AuthError(f"{where} answered HTTP {status} ({message}); check --auth-url")
        jwt = body.decode("utf-8", "replace").strip().strip('"')
        if not jwt or len(jwt) > _JWT_MAX or any(ch.isspace() or ch in "<{" for ch in jwt):
            raise TransientError(f"{where} answered {status} with something that is not a JWT")
        return jwt
