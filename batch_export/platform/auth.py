"""Credentials per API version: query-string token (v1–v3) or bearer JWT (v4).

A v4 JWT is fetched once, cached for the run, refreshed shortly before its
``exp`` claim and once after a 401. Refreshes are single-flight: a hundred
requests that find the JWT stale cause one call to the auth endpoint.

A refresh *before* expiry that meets a blip (the fetcher raises a
TransientError after its own retries) keeps the current JWT, which is still
valid, and tries again a little later: a hiccup of the auth endpoint at hour
three of a long run costs nothing.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import time
from collections.abc import Awaitable, Callable

from ..errors import TransientError
from ..redaction import Redactor, Secret

__all__ = ["BearerAuth", "jwt_expiry"]

#: JWT fetcher: returns the raw JWT text from the auth endpoint. Its argument
#: says whether a still-valid JWT is at hand: then one attempt is enough (a
#: blip raises TransientError); without one it must be patient.
FetchJwt = Callable[[bool], Awaitable[str]]


def jwt_expiry(jwt: str) -> float | None:
    """The ``exp`` claim of a JWT in Unix seconds, or None when it cannot be read.

    The signature is not checked: the platform checks it; we only need to know
    when to ask for a new one.
    """
    parts = jwt.split(".")
    if len(parts) != 3:
        return None
    payload = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return None
    exp = claims.get("exp") if isinstance(claims, dict) else None
    return float(exp) if isinstance(exp, (int, float)) else None


class BearerAuth:
    """Holds the run's JWT and renews it before it expires."""

    #: assumed lifetime when the JWT carries no readable ``exp`` (the docs say 24 h)
    default_lifetime = 24 * 3600.0
    #: after a failed early refresh, the next try comes at most this many seconds later
    retry_refresh_after = 30.0

    def __init__(
        self, fetch: FetchJwt, redactor: Redactor, *, wall_clock: Callable[[], float] = time.time
    ) -> None:
        self._fetch = fetch
        self._redactor = redactor
        self._now = wall_clock
        self._jwt: Secret | None = None
        self._refresh_at = 0.0
        #: until when the current JWT may still serve after a failed early refresh
        self._usable_until = 0.0
        self._lock = asyncio.Lock()
        self.refreshes = 0

    async def header(self) -> dict[str, str]:
        """The Authorization header, renewing the JWT first when it is due."""
        jwt = self._jwt
        if jwt is None or self._now() >= self._refresh_at:
            jwt = await self._renew(stale=jwt)
        return {"Authorization": f"Bearer {jwt.reveal()}"}

    async def invalidate(self, rejected_header: dict[str, str]) -> None:
        """A request with ``rejected_header`` got 401: renew unless someone already did."""
        current = self._jwt
        if (
            current is not None
            and rejected_header.get("Authorization") == f"Bearer {current.reveal()}"
        ):
            await self._renew(stale=current, rejected=True)

    async def _renew(self, stale: Secret | None, *, rejected: bool = False) -> Secret:
        async with self._lock:
            if self._jwt is not None and self._jwt is not stale:
                return self._jwt  # another request renewed it while we waited
            now = self._now()
            if self._jwt is not None and not rejected and now < self._refresh_at:
                return self._jwt  # a failed early refresh already postponed the next one
            fallback = self._jwt is not None and not rejected and now < self._usable_until
            try:
                raw = (await self._fetch(fallback)).strip().strip('"')
            except TransientError:
                if not fallback or self._jwt is None:
                    raise
                # Try again halfway to the end of the JWT's usable life (at most 30 s on).
                wait = min(self.retry_refresh_after, (self._usable_until - now) / 2)
                self._refresh_at = now + max(0.0, wait)
                return self._jwt
            self._redactor.add(raw)
            issued = self._now()
            expiry = jwt_expiry(raw)
            lifetime = (expiry - issued) if expiry is not None else self.default_lifetime
            # Renew with a tenth of the lifetime (at most five minutes) to spare,
            # so a request never leaves with a JWT about to lapse in flight.
            margin = min(300.0, max(0.0, lifetime) / 10)
            self._refresh_at = issued + lifetime - margin
            # Past a failed early refresh the JWT serves until half the margin is left.
            self._usable_until = issued + lifetime - margin / 2
            self._jwt = Secret(raw)
            self.refreshes += 1
            return self._jwt
