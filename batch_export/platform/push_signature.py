"""The pieces of a signed delivery, read without any I/O: Signature, Digest, Date, DKIM key.

The platform signs its outgoing requests with draft-cavage HTTP Signatures
(RSA-SHA256 over ``(request-target) host date x-copernica-id digest``), sends
an RFC 3230 ``Digest: SHA-256=<base64>`` of the body and names the account in
``X-Copernica-ID: account_<id>``. The public key is published as a DKIM TXT
record (``v=DKIM1; k=rsa; p=<base64 DER SubjectPublicKeyInfo>``) under the
name the signature's ``keyId`` gives. This module parses each of those and
rebuilds the signing string; ``push_origin.py`` puts them together.

Every function raises ``OriginError`` with a message that is safe to log: it
names what is wrong, never a header's full value (the signing string holds the
secret path).
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # cryptography is imported on first use: push mode only
    from cryptography.hazmat.primitives.asymmetric import rsa

__all__ = [
    "REQUIRED_HEADERS",
    "OriginError",
    "SignatureParams",
    "check_key_id",
    "parse_date",
    "parse_digest",
    "parse_dkim_record",
    "parse_signature",
    "signing_string",
    "verify_rsa_sha256",
]

#: what the platform signs; a signature covering less is refused, since the
#: headers left out could be changed by whoever replays it
REQUIRED_HEADERS: tuple[str, ...] = ("(request-target)", "host", "date", "x-copernica-id", "digest")
#: ``algorithm`` values that mean RSA-SHA256 here ("hs2019": the key decides)
_ALGORITHMS = frozenset({"rsa-sha256", "hs2019"})
_KEY_DOMAIN = ".copernica.com"
_LABEL = re.compile(r"(?!-)[a-z0-9_-]{1,63}(?<!-)")
_PARAM_NAME = re.compile(r"([A-Za-z][A-Za-z0-9_-]*)[ \t]*=[ \t]*")
_MAX_SIGNATURE = 4096  # characters: far above any RSA signature in base64
_MIN_KEY_BITS = 1024  # what DKIM still allows


class OriginError(Exception):
    """A delivery whose origin cannot be established; ``status`` is the HTTP answer.

    401: unsigned (when a signature is required), or the signature does not
    hold; 403: validly formed but not acceptable (another account, a key
    outside copernica.com); 503: the key could not be looked up just now (the
    platform retries later).
    """

    def __init__(self, reason: str, status: int = 401) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


@dataclass(frozen=True)
class SignatureParams:
    """A parsed ``Signature`` header."""

    key_id: str
    algorithm: str | None
    headers: tuple[str, ...]
    #: the signature as sent (base64), kept as evidence
    signature: str
    raw: bytes


def _quoted(value: str, at: int, name: str) -> tuple[str, int]:
    """The quoted string starting after its opening quote at ``at``, and where it ends."""
    chars: list[str] = []
    end = len(value)
    while at < end and value[at] != '"':
        if value[at] == "\\" and at + 1 < end:
            at += 1  # a quoted-pair: the next character stands for itself
        chars.append(value[at])
        at += 1
    if at >= end:
        raise OriginError(f"the Signature header's {name} has no closing quote")
    return "".join(chars), at + 1


def _params(value: str) -> dict[str, str]:
    """``name="value", name=token`` pairs; quoted values may hold commas and ``\\"``."""
    found: dict[str, str] = {}
    at, end = 0, len(value)
    while True:
        while at < end and value[at] in " \t,":
            at += 1
        if at >= end:
            return found
        match = _PARAM_NAME.match(value, at)
        if match is None:
            raise OriginError("the Signature header is not a list of name=value pairs")
        name, at = match.group(1), match.end()
        if at < end and value[at] == '"':
            text, at = _quoted(value, at + 1, name)
        else:
            stop = value.find(",", at)
            stop = end if stop < 0 else stop
            text, at = value[at:stop].strip(), stop
        if name in found:
            raise OriginError(f"the Signature header gives {name} twice")
        found[name] = text
        rest = value[at:end].lstrip(" \t")
        if rest and not rest.startswith(","):
            raise OriginError(f"the Signature header has text after {name} without a comma")


def parse_signature(value: str) -> SignatureParams:
    """The ``Signature`` header's parameters (OriginError 401 if it is not one)."""
    if len(value) > 2 * _MAX_SIGNATURE:
        raise OriginError("the Signature header is too long")
    params = _params(value)
    for name in ("keyId", "signature"):
        if not params.get(name):
            raise OriginError(f"the Signature header has no {name}")
    algorithm = params.get("algorithm")
    if algorithm is not None and algorithm.lower() not in _ALGORITHMS:
        raise OriginError(f"the Signature header's algorithm {algorithm[:40]!r} is not rsa-sha256")
    # Without "headers" the draft means just the Date header: less than the platform signs.
    headers = tuple(params.get("headers", "date").lower().split())
    missing = [h for h in REQUIRED_HEADERS if h not in headers]
    if missing:
        raise OriginError(f"the signature does not cover {', '.join(missing)}")
    signature = params["signature"]
    try:
        raw = base64.b64decode(signature, validate=True)
    except (binascii.Error, ValueError):
        raise OriginError("the Signature header's signature is not base64") from None
    return SignatureParams(params["keyId"], algorithm, headers, signature, raw)


def check_key_id(key_id: str) -> str:
    """The keyId as a lower-case DNS name under copernica.com (OriginError 403 otherwise)."""
    name = key_id.lower().rstrip(".")
    labels = name.split(".")
    valid = len(name) <= 253 and all(_LABEL.fullmatch(label) for label in labels)
    if not valid or not name.endswith(_KEY_DOMAIN):
        raise OriginError("the signature's keyId is not a DNS name under copernica.com", 403)
    return name


def signing_string(
    covered: Sequence[str], request_target: str, headers: Mapping[str, str]
) -> bytes:
    """The draft-cavage signing string: one ``name: value`` line per covered header.

    ``request_target`` is ``post /path`` as the platform addressed it;
    ``headers`` maps lower-case names to values (``host`` included).
    """
    lines: list[str] = []
    for name in covered:
        if name == "(request-target)":
            value: str | None = request_target
        else:
            value = headers.get(name)
        if value is None:
            raise OriginError(f"the signed header {name} is missing")
        lines.append(f"{name}: {value.strip()}")
    return "\n".join(lines).encode("utf-8")


def parse_digest(value: str) -> bytes:
    """The SHA-256 out of an RFC 3230 ``Digest`` header (``SHA-256=<base64>``, maybe in a list)."""
    for part in value.split(","):
        algorithm, sep, encoded = part.strip().partition("=")
        if sep and algorithm.strip().lower() == "sha-256":
            try:
                digest = base64.b64decode(encoded.strip(), validate=True)
            except (binascii.Error, ValueError):
                break
            if len(digest) == 32:
                return digest
            break
    raise OriginError("the Digest header holds no SHA-256 of the body")


def parse_date(value: str) -> datetime:
    """The ``Date`` header as an aware datetime (OriginError 401 if it is not an HTTP date)."""
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        raise OriginError("the Date header is not an HTTP date") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return when


def parse_dkim_record(txt: str) -> rsa.RSAPublicKey:
    """The RSA public key of a DKIM TXT record (``v=DKIM1; k=rsa; p=...``)."""
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    tags: dict[str, str] = {}
    for part in txt.split(";"):
        name, sep, value = part.partition("=")
        if sep:
            tags[name.strip().lower()] = re.sub(r"\s+", "", value)
    if tags.get("v", "DKIM1") != "DKIM1" or tags.get("k", "rsa").lower() != "rsa":
        raise OriginError("the keyId's TXT record is not a DKIM RSA key")
    encoded = tags.get("p", "")
    if not encoded:
        raise OriginError("the keyId's DKIM key is revoked (empty p=)")
    try:
        key = serialization.load_der_public_key(base64.b64decode(encoded, validate=True))
    except (binascii.Error, ValueError, UnsupportedAlgorithm):
        raise OriginError("the keyId's DKIM record holds no readable public key") from None
    if not isinstance(key, rsa.RSAPublicKey) or key.key_size < _MIN_KEY_BITS:
        raise OriginError("the keyId's DKIM record holds no usable RSA key")
    return key


def verify_rsa_sha256(key: rsa.RSAPublicKey, signature: bytes, message: bytes) -> bool:
    """Whether ``signature`` is ``key``'s RSA-SHA256 (PKCS#1 v1.5) signature of ``message``."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    try:
        key.verify(signature, message, padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        return False
    return True
