"""Credentials per API version: query-string token (v1–v3) or bearer JWT (v4).

A v4 JWT is fetched once, cached for the run, refreshed shortly before its
``exp`` claim and once after a 401. Refreshes are single-flight: a hundred
requests that find the JWT stale cause one call to the auth endpoint.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import time
from collections.abc import Awaitable, Callable

from .redaction import Redactor, Secret

__all__ = ["BearerAuth", "jwt_expiry"]

#: JWT fetcher: returns the raw JWT text from the auth endpoint.
FetchJwt = Callable[[], Awaitable[str]]


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

    def __init__(
        self, fetch: FetchJwt, redactor: Redactor, *, wall_clock: Callable[[], float] = time.time
    ) -> None:
        self._fetch = fetch
        self._redactor = redactor
        self._now = wall_clock
        self._jwt: Secret | None = None
        self._refresh_at = 0.0
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
            await self._renew(stale=current)

    async def _renew(self, stale: Secret | None) -> Secret:
        async with self._lock:
            if self._jwt is not None and self._jwt is not stale:
                return self._jwt  # another request renewed it while we waited
            raw = (await self._fetch()).strip().strip('"')
            self._redactor.add(raw)
            issued = self._now()
            expiry = jwt_expiry(raw)
            lifetime = (expiry - issued) if expiry is not None else self.default_lifetime
            # Renew with a tenth of the lifetime (at most five minutes) to spare,
            # so a request never leaves with a JWT about to lapse in flight.
            margin = min(300.0, max(0.0, lifetime) / 10)
            self._refresh_at = issued + lifetime - margin
            self._jwt = Secret(raw)
            self.refreshes += 1
            return self._jwt
