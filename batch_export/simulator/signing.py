"""Signing the report POSTs the way the platform signs its outgoing requests.

The vendor's security pages say every outgoing request carries ``Digest``
(RFC 3230, ``SHA-256=<base64>``), ``X-Copernica-ID: account_<id>`` and a
draft-cavage ``Signature`` (RSA-SHA256 over ``(request-target) host date
x-copernica-id digest``), its ``keyId`` naming a DKIM TXT record under
copernica.com, keys rotating monthly. This module plays that side: its own
implementation, sharing nothing with the exporter's check.

The key is RSA-2048, generated on first use and kept for the process, one
per seed (generating one takes a noticeable fraction of a second, and a test
session starts hundreds of simulators). Its keyId names this month, as a
monthly rotation would: ``sim-YYYYMM._domainkey.copernica.com``. A test
serves ``dkim_records()`` from its own DNS server.
"""

from __future__ import annotations

import base64
import hashlib
import time
from datetime import datetime, timezone
from email.utils import formatdate
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from .exports import ExportSpec, export_chunks

if TYPE_CHECKING:  # cryptography is imported when a simulator first signs (not by every CLI)
    from cryptography.hazmat.primitives.asymmetric import rsa

__all__ = [
    "SIGNED_HEADERS",
    "ReportSigner",
    "dkim_record",
    "export_sha256",
    "signed_headers",
]

SIGNED_HEADERS = "(request-target) host date x-copernica-id digest"
_KEYS: dict[int, rsa.RSAPrivateKey] = {}


def _key_for(seed: int) -> rsa.RSAPrivateKey:
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = _KEYS.get(seed)
    if key is None:
        key = _KEYS[seed] = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key


def export_sha256(spec: ExportSpec) -> bytes:
    """The SHA-256 of an export's exact bytes (a first pass over its deterministic chunks)."""
    digest = hashlib.sha256()
    for chunk in export_chunks(spec):
        digest.update(chunk)
    return digest.digest()


def dkim_record(key: rsa.RSAPublicKey) -> str:
    """The DKIM TXT record that publishes ``key``."""
    from cryptography.hazmat.primitives import serialization

    der = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return "v=DKIM1; k=rsa; p=" + base64.b64encode(der).decode("ascii")


def signed_headers(
    key: rsa.RSAPrivateKey,
    key_id: str,
    url: str,
    body_sha256: bytes,
    account: str,
    now: float | None = None,
) -> dict[str, str]:
    """The headers of a POST of a body with ``body_sha256`` to ``url``, signed by ``key``.

    ``Host`` is set explicitly, so what is signed is exactly what is sent.
    """
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    target = f"post {parts.path or '/'}" + (f"?{parts.query}" if parts.query else "")
    date = formatdate(time.time() if now is None else now, usegmt=True)
    digest = "SHA-256=" + base64.b64encode(body_sha256).decode("ascii")
    values = {
        "(request-target)": target,
        "host": host,
        "date": date,
        "x-copernica-id": account,
        "digest": digest,
    }
    message = "\n".join(f"{name}: {values[name]}" for name in SIGNED_HEADERS.split())
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    signature = key.sign(message.encode("utf-8"), padding.PKCS1v15(), hashes.SHA256())
    encoded = base64.b64encode(signature).decode("ascii")
    return {
        "Host": host,
        "Date": date,
        "X-Copernica-ID": account,
        "Digest": digest,
        "Signature": f'keyId="{key_id}",algorithm="rsa-sha256",'
        f'headers="{SIGNED_HEADERS}",signature="{encoded}"',
    }


class ReportSigner:
    """The simulated platform's signing identity: its key, keyId and account."""

    def __init__(self, seed: int, account_id: int) -> None:
        self._seed = seed
        self.account = f"account_{account_id}"
        month = datetime.now(timezone.utc).strftime("%Y%m")
        self.key_id = f"sim-{month}._domainkey.copernica.com"

    @property
    def key(self) -> rsa.RSAPrivateKey:
        """The private key (generated on first use, then shared by the process)."""
        return _key_for(self._seed)

    def headers(self, url: str, body_sha256: bytes, now: float | None = None) -> dict[str, str]:
        """Signed headers for one report POST (a fresh Date each call)."""
        return signed_headers(self.key, self.key_id, url, body_sha256, self.account, now)

    def dkim_records(self) -> dict[str, str]:
        """``{keyId: TXT record}``: what DNS must serve for the signatures to verify."""
        return {self.key_id: dkim_record(self.key.public_key())}
