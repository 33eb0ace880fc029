"""Proof of origin for pushed deliveries: is this POST the platform's, for this account?

The platform signs every outgoing request (draft-cavage HTTP Signatures,
RSA-SHA256 over ``(request-target) host date x-copernica-id digest``, the key
a DKIM TXT record under copernica.com). ``OriginVerifier.check`` runs on the
headers alone, before a byte of the body is read, cheapest checks first and
the DNS lookup last:

1. the ``Signature`` header parses and covers all five headers;
2. its ``keyId`` is a name under copernica.com (anything else is refused
   without a lookup: we never ask DNS about a name a sender picked freely);
3. ``Date`` is within ``max_skew`` (60 s) of our clock, either way;
4. ``X-Copernica-ID`` is ``account_<--account-id>``, when one was given;
5. ``Digest`` holds a SHA-256;
6. the signature verifies, against the signing string rebuilt from the
   address the platform was given (the public report URL: its path, which
   holds the secret, and its host), not from what a proxy passed on.

The body is checked as it streams: ``Origin.guard`` hashes it on its way into
the sink and raises ``DigestMismatch`` (an ``IntegrityError``) at its end if
it is not what the signed ``Digest`` says, so the sink discards it before it
commits anything (every sink consumes the whole iterator before ``commit``).

What ``check`` returns is also the evidence kept with the file
(``SavedExport.origin``, then the journal's ``done`` line and the manifest):
the signed headers and what their check found, never the secret path.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError, IntegrityError
from .push_keys import KeySource
from .push_signature import (
    OriginError,
    check_key_id,
    parse_date,
    parse_digest,
    parse_signature,
    signing_string,
    verify_rsa_sha256,
)

__all__ = ["DigestMismatch", "Origin", "OriginError", "OriginVerifier", "account_header"]

UNSIGNED: dict[str, Any] = {"signed": False}


class DigestMismatch(IntegrityError):
    """A signed delivery whose body is not the one its ``Digest`` header names."""


def account_header(account_id: str) -> str:
    """``--account-id`` (``123`` or ``account_123``) as the X-Copernica-ID value it must match."""
    number = account_id.strip().removeprefix("account_")
    if not re.fullmatch(r"[0-9]{1,20}", number):
        raise ConfigError(
            f"--account-id {account_id!r} is not an account number, e.g. --account-id 12345 "
            "(the X-Copernica-ID header then reads account_12345)"
        )
    return f"account_{number}"


@dataclass(frozen=True)
class Origin:
    """What the check of one delivery's headers found; ``record`` is the evidence."""

    record: dict[str, Any]
    #: the SHA-256 the signed Digest header promises; None for an unsigned delivery
    digest: bytes | None = field(default=None, repr=False)

    def guard(self, head: bytes, rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        """``rest`` passed through; at its end, DigestMismatch unless head + rest match."""
        if self.digest is None:
            return rest
        return self._guarded(self.digest, head, rest)

    @staticmethod
    async def _guarded(
        expected: bytes, head: bytes, rest: AsyncIterator[bytes]
    ) -> AsyncIterator[bytes]:
        digest = hashlib.sha256(head)
        async for chunk in rest:
            digest.update(chunk)
            yield chunk
        # Raised from the iterator itself, so the sink sees it before it commits.
        if not hmac.compare_digest(digest.digest(), expected):
            raise DigestMismatch("the body does not match its signed Digest header")


class OriginVerifier:
    """Checks the signed headers of a delivery (module docstring); one per receiver."""

    def __init__(
        self,
        keys: KeySource,
        *,
        account: str | None = None,
        require_signature: bool = False,
        max_skew: float = 60.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._keys = keys
        self._account = account
        self.require_signature = require_signature
        self._max_skew = max_skew
        self._clock = clock

    def __repr__(self) -> str:
        return (
            f"OriginVerifier(account={self._account!r}, "
            f"require_signature={self.require_signature}, keys={self._keys!r})"
        )

    async def check(self, request_target: str, host: str, headers: Mapping[str, str]) -> Origin:
        """The origin of a delivery to ``request_target`` (``post /path``) at ``host``.

        Raises OriginError (its ``status`` the answer) when it is refused.
        """
        value = headers.get("Signature")
        if value is None:
            if self.require_signature:
                raise OriginError("the delivery is not signed")
            return Origin(dict(UNSIGNED))
        params = parse_signature(value)
        key_id = check_key_id(params.key_id)
        date = headers.get("Date") or ""
        skew = self._clock() - parse_date(date).timestamp()
        if abs(skew) > self._max_skew:
            direction = "old" if skew > 0 else "ahead of our clock"
            raise OriginError(
                f"the delivery's Date is {abs(skew):.0f} s {direction} "
                f"(at most {self._max_skew:g} s is accepted)"
            )
        account = headers.get("X-Copernica-ID") or ""
        if self._account is not None and account != self._account:
            raise OriginError(f"the delivery is not from {self._account}", 403)
        digest_value = headers.get("Digest") or ""
        digest = parse_digest(digest_value)
        signed = {name.lower(): v for name, v in headers.items()} | {"host": host}
        message = signing_string(params.headers, request_target, signed)
        keys = await self._keys.keys(key_id)
        key = next((k for k in keys if verify_rsa_sha256(k, params.raw, message)), None)
        if key is None:
            raise OriginError(f"the signature does not verify with the key {key_id}")
        from cryptography.hazmat.primitives import serialization  # push mode only: see push_keys

        der = key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        record: dict[str, Any] = {
            "signed": True,
            "verified": True,
            "key_id": key_id,
            "account": account,
            "date": date,
            "digest": digest_value,
            "algorithm": params.algorithm or "rsa-sha256",
            "headers": " ".join(params.headers),
            "signature": params.signature,
            "host": host,
            # With the key these allow checking the signature again later, without
            # the signing string itself (its request target holds the secret path).
            "signed_sha256": hashlib.sha256(message).hexdigest(),
            "key_sha256": hashlib.sha256(der).hexdigest(),
        }
        return Origin(record, digest)
