"""JWT issue and verification for the simulated v4 API.

Real-looking tokens (``base64url(header).base64url(payload).base64url(HS256)``)
so the exporter can decode ``exp`` exactly as it would on the real platform.
The ``sub`` claim is a digest of the access token, never the token itself:
a JWT is readable by anyone who holds it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

__all__ = ["JwtIssuer", "account_of"]


def account_of(access_token: str) -> str:
    """A stable, non-secret name for the account an access token belongs to."""
    return "acct-" + hashlib.sha256(access_token.encode()).hexdigest()[:16]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class JwtIssuer:
    """Issues HS256 JWTs for one secret and checks signature and expiry.

    ``exp``/``iat`` are Unix times (the wall clock: that is what a client
    compares them with). ``exp`` is fractional when the lifetime is shorter
    than a minute, so second-long test lifetimes stay precise.
    """

    def __init__(self, secret: bytes, lifetime: float) -> None:
        self._secret = secret
        self.lifetime = lifetime

    def _sign(self, signing_input: bytes) -> str:
        return _b64(hmac.new(self._secret, signing_input, hashlib.sha256).digest())

    def issue(self, subject: str, now: float | None = None) -> str:
        """A JWT for `subject`, valid for `lifetime` seconds from `now`."""
        now = time.time() if now is None else now
        exp: float = now + self.lifetime
        exp = round(exp, 3) if self.lifetime < 60 else int(exp)
        header = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
        payload = _b64(
            json.dumps(
                {"sub": subject, "iat": int(now), "exp": exp}, separators=(",", ":")
            ).encode()
        )
        signing_input = f"{header}.{payload}".encode("ascii")
        return f"{header}.{payload}.{self._sign(signing_input)}"

    def verify(self, token: str, now: float | None = None) -> str | None:
        """The subject of a valid, unexpired JWT; None for anything else."""
        parts = token.split(".")
        if len(parts) != 3:
            return None
        expected = self._sign(f"{parts[0]}.{parts[1]}".encode("ascii", "replace"))
        if not hmac.compare_digest(expected, parts[2]):
            return None
        try:
            claims = json.loads(_unb64(parts[1]))
        except ValueError:
            return None
        if not isinstance(claims, dict):
            return None
        exp, subject = claims.get("exp"), claims.get("sub")
        if not isinstance(exp, (int, float)) or not isinstance(subject, str):
            return None
        now = time.time() if now is None else now
        return subject if now < exp else None
